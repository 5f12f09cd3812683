package smtp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// MXHost is one mail exchanger of a domain and its probe.
type MXHost struct {
	Name       string
	Preference uint16
	Result     *Result
}

// MXResult is the probe of every mail exchanger of a domain.
type MXResult struct {
	Domain string
	// LookupDuration is the time the MX lookup took.
	LookupDuration time.Duration
	// Implicit is true when the domain has no MX records and its own address
	// stands in as the only exchanger (RFC 5321 section 5.1).
	Implicit bool
	// Hosts are the exchangers probed, in preference order, ties by name.
	Hosts []MXHost
	// Found is how many exchangers the lookup returned (Hosts may hold fewer,
	// up to the probe's limit).
	Found int
	// Err is a failure of the domain as a whole: of the lookup itself
	// (ReasonResolve, ReasonTimeout, or ReasonNullMX for a domain that
	// accepts no mail, RFC 7505), or a refusal by the address policy
	// (ReasonPolicy, wrapping ErrPolicy), when nothing was dialled. A
	// failure of one exchanger is in its Result only.
	Err      *Error
	Duration time.Duration
}

// MXSuccess says which exchangers must succeed for a domain to succeed.
type MXSuccess string

// The MX success modes.
const (
	MXSuccessAll     MXSuccess = "all"     // every exchanger probed
	MXSuccessAny     MXSuccess = "any"     // at least one
	MXSuccessPrimary MXSuccess = "primary" // every exchanger with the lowest preference value
)

// Success judges the domain by mode; an unknown mode judges as MXSuccessAll.
func (m *MXResult) Success(mode MXSuccess) bool {
	if m.Err != nil || len(m.Hosts) == 0 {
		return false
	}
	switch mode {
	case MXSuccessAny:
		for _, h := range m.Hosts {
			if h.Result.Success() {
				return true
			}
		}
		return false
	case MXSuccessPrimary:
		for _, h := range m.Hosts {
			if h.Preference == m.Hosts[0].Preference && !h.Result.Success() {
				return false
			}
		}
		return true
	default:
		for _, h := range m.Hosts {
			if !h.Result.Success() {
				return false
			}
		}
		return true
	}
}

// ProbeMX looks up the MX records of domain and probes up to maxHosts of its
// exchangers (by preference, ties by name) concurrently on port, all within
// ctx's deadline. opts must have passed Validate. Transcript lines of each
// exchanger carry its name in TranscriptLine.Host.
//
// Every exchanger is resolved, and all of their addresses pass
// opts.CheckAddr, before any is dialled. If the policy refuses one, nothing
// is dialled: the error is then the *Error also set in MXResult.Err
// (ReasonPolicy, wrapping ErrPolicy and the policy's own error), and every
// host's Result fails with ReasonPolicy too. That is the only case with a
// non-nil error: a failed lookup is reported in MXResult.Err, a failed
// exchanger in its Result.Err, and the MXResult is never nil.
func ProbeMX(ctx context.Context, domain string, port uint16, opts *Options, maxHosts int) (*MXResult, error) {
	start := time.Now()
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	tr := newTranscript(opts.Transcript, start)
	res := &MXResult{Domain: domain}
	defer func() { res.Duration = time.Since(start) }()

	mxs, err := lookupMX(ctx, domain, opts, tr, res)
	res.LookupDuration = time.Since(start)
	if err != nil {
		res.Err = err
		return res, nil
	}
	res.Found = len(mxs)
	if len(mxs) > maxHosts {
		tr.notef("%s has %d MX hosts: probing the first %d", domain, len(mxs), maxHosts)
		mxs = mxs[:maxHosts]
	}
	res.Hosts = make([]MXHost, len(mxs))
	probers := make([]*prober, len(mxs))
	for i, mx := range mxs {
		tr.notef("MX %d %s", mx.Pref, mx.Host)
		res.Hosts[i] = MXHost{Name: mx.Host, Preference: mx.Pref}
		probers[i] = newProber(ctx, mx.Host, port, opts, tr, mx.Host)
	}

	// First every exchanger is resolved and vetted, then (unless the policy
	// refused one) every vetted one is dialled.
	prepared := make([]*Error, len(probers))
	forEach(len(probers), func(i int) { prepared[i] = probers[i].prepare() })
	if i := slices.IndexFunc(prepared, func(e *Error) bool { return e != nil && e.Reason == ReasonPolicy }); i >= 0 {
		refused := res.Hosts[i].Name
		res.Err = &Error{Phase: PhaseConnect, Reason: ReasonPolicy, Err: fmt.Errorf("exchanger %s: %w", refused, prepared[i].Err)}
		for j, p := range probers {
			e := prepared[j]
			if e == nil {
				e = policyError(fmt.Errorf("not dialled: exchanger %s of %s was refused", refused, domain))
			}
			res.Hosts[j].Result, _ = p.done(e)
		}
		return res, res.Err
	}
	forEach(len(probers), func(i int) {
		p := probers[i]
		if prepared[i] != nil {
			res.Hosts[i].Result, _ = p.done(prepared[i])
			return
		}
		res.Hosts[i].Result, _ = p.done(p.run())
	})
	return res, nil
}

// lookupMX returns the exchangers of domain sorted by preference, then by
// name (Go shuffles equal preferences; the subset probed under maxHosts must
// not change from one probe to the next), names lower
// case without the trailing dot; for a domain without MX records the domain
// itself (RFC 5321 section 5.1, res.Implicit set).
func lookupMX(ctx context.Context, domain string, opts *Options, tr *transcript, res *MXResult) ([]*net.MX, *Error) {
	mxs, err := opts.resolver().LookupMX(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) > 0:
	case err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound && ctx.Err() == nil):
		// No MX records: the domain itself is the implicit exchanger. If the
		// domain does not exist either, its probe fails in resolve.
		res.Implicit = true
		tr.notef("%s has no MX records: probing the domain itself (implicit MX)", domain)
		return []*net.MX{{Host: domain, Pref: 0}}, nil
	default:
		reason := ReasonResolve
		if ctx.Err() != nil {
			reason = ReasonTimeout
		}
		e := &Error{Phase: PhaseResolve, Reason: reason, Err: opts.resolveError("looking up MX of "+domain, err)}
		tr.notef("MX lookup failed: %v", e.Err)
		return nil, e
	}
	for _, mx := range mxs {
		if mx.Host == "." || mx.Host == "" {
			e := &Error{Phase: PhaseResolve, Reason: ReasonNullMX, Err: fmt.Errorf("%s publishes a null MX (RFC 7505): it accepts no mail", domain)}
			tr.notef("%s", e.Err)
			return nil, e
		}
		mx.Host = strings.ToLower(strings.TrimSuffix(mx.Host, "."))
	}
	slices.SortFunc(mxs, func(a, b *net.MX) int {
		return cmp.Or(cmp.Compare(a.Pref, b.Pref), strings.Compare(a.Host, b.Host))
	})
	return mxs, nil
}

// forEach runs f(0) to f(n-1) concurrently and waits for all.
func forEach(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}
