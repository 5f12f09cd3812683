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
	Err *Error
	// MTASTS is the domain's MTA-STS discovery (Options.MTASTS) when a
	// valid policy was fetched; nil when the option is off, the domain
	// publishes no policy, or the lookup failed (MTASTSErr).
	MTASTS *MTASTSResult
	// MTASTSErr is the failure of the MTA-STS lookup or policy fetch, in
	// phase mta_sts: ReasonMTASTS for a published record whose policy cannot
	// be fetched or parsed, ReasonTimeout, or ReasonPolicy (wrapping
	// ErrPolicy) when the address policy refused the policy host, which also
	// sets Err and stops the probe before anything is dialled. Apart from
	// that refusal it does not fail the probe by itself: the exchangers are
	// probed without a policy (no cached policy exists to enforce), and
	// the failure is reported.
	MTASTSErr *Error
	// TLSRPT is the domain's TLS-RPT lookup (Options.TLSRPT); nil when the
	// option is off or the lookup failed (TLSRPTErr). Its Record is nil when
	// the domain publishes no valid record.
	TLSRPT *TLSRPTResult
	// TLSRPTErr is a failed TLS-RPT lookup (SERVFAIL, timeout): reported,
	// never a failure of the probe.
	TLSRPTErr error
	Duration  time.Duration
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
// exchanger carry its name in TranscriptLine.Host ("name address" with
// opts.AllAddresses).
//
// With opts.AllAddresses, Hosts holds one MXHost per exchanger and address
// probed (same Name and Preference, Result.Addr telling the address); an
// exchanger that failed before an address was chosen (resolution) has one
// entry. With opts.MTASTS the domain's policy is fetched while the MX
// records are looked up, and each exchanger is judged by it after its
// probe (phase mta_sts, reason mta_sts, in enforce mode, unless the
// exchanger already failed); with opts.TLSRPT the TLS-RPT record is looked
// up at the same time.
//
// Every exchanger is resolved, and all of their addresses pass
// opts.CheckAddr, before any is dialled. If the policy refuses one, nothing
// is dialled: the error is then the *Error also set in MXResult.Err
// (ReasonPolicy, wrapping ErrPolicy and the policy's own error), and every
// host's Result fails with ReasonPolicy too. The same holds when the policy
// refuses the MTA-STS policy host (MXResult.Err is then also MTASTSErr, in
// phase mta_sts). That is the only case with a non-nil error: a failed
// lookup is reported in MXResult.Err, a failed exchanger in its Result.Err,
// and the MXResult is never nil.
func ProbeMX(ctx context.Context, domain string, port uint16, opts *Options, maxHosts int) (*MXResult, error) {
	start := time.Now()
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	tr := newTranscript(opts.Transcript, start)
	res := &MXResult{Domain: domain}
	defer func() { res.Duration = time.Since(start) }()

	checks := startDomainChecks(ctx, domain, opts)
	mxs, err := lookupMX(ctx, domain, opts, tr, res)
	res.LookupDuration = time.Since(start)
	checks.wait(tr, res)
	if err != nil {
		if res.Err != nil { // the policy refused the MTA-STS policy host
			return res, res.Err
		}
		res.Err = err
		return res, nil
	}
	res.Found = len(mxs)
	if len(mxs) > maxHosts {
		tr.notef("%s has %d MX hosts: probing the first %d", domain, len(mxs), maxHosts)
		mxs = mxs[:maxHosts]
	}
	probers := make([]*prober, len(mxs))
	for i, mx := range mxs {
		tr.notef("MX %d %s", mx.Pref, mx.Host)
		probers[i] = newProber(ctx, mx.Host, port, opts, tr, mx.Host)
		probers[i].all = opts.AllAddresses
	}
	if res.Err != nil { // the policy refused the MTA-STS policy host
		res.Hosts = make([]MXHost, len(mxs))
		for i, p := range probers {
			res.Hosts[i] = MXHost{Name: mxs[i].Host, Preference: mxs[i].Pref}
			res.Hosts[i].Result, _ = p.done(policyError(fmt.Errorf("not dialled: the mta-sts policy host of %s was refused", domain)))
		}
		return res, res.Err
	}

	// First every exchanger is resolved and vetted, then (unless the policy
	// refused one) every vetted one is dialled.
	prepared := make([]*Error, len(probers))
	forEach(len(probers), func(i int) { prepared[i] = probers[i].prepare() })
	if i := slices.IndexFunc(prepared, func(e *Error) bool { return e != nil && e.Reason == ReasonPolicy }); i >= 0 {
		refused := mxs[i].Host
		res.Err = &Error{Phase: PhaseConnect, Reason: ReasonPolicy, Err: fmt.Errorf("exchanger %s: %w", refused, prepared[i].Err)}
		res.Hosts = make([]MXHost, len(mxs))
		for j, p := range probers {
			e := prepared[j]
			if e == nil {
				e = policyError(fmt.Errorf("not dialled: exchanger %s of %s was refused", refused, domain))
			}
			res.Hosts[j] = MXHost{Name: mxs[j].Host, Preference: mxs[j].Pref}
			res.Hosts[j].Result, _ = p.done(e)
		}
		return res, res.Err
	}
	// One dialog per exchanger, or per address of each with AllAddresses.
	type dialog struct {
		p        *prober
		prepared *Error
	}
	var dialogs []dialog
	for i, p := range probers {
		if prepared[i] != nil {
			dialogs = append(dialogs, dialog{p, prepared[i]})
			res.Hosts = append(res.Hosts, MXHost{Name: mxs[i].Host, Preference: mxs[i].Pref})
			continue
		}
		for _, c := range p.perAddress() {
			dialogs = append(dialogs, dialog{c, nil})
			res.Hosts = append(res.Hosts, MXHost{Name: mxs[i].Host, Preference: mxs[i].Pref})
		}
	}
	forEach(len(dialogs), func(i int) {
		d := dialogs[i]
		if d.prepared != nil {
			res.Hosts[i].Result, _ = d.p.done(d.prepared)
			return
		}
		res.Hosts[i].Result, _ = d.p.done(d.p.run())
		if res.MTASTS != nil {
			d.p.judgeMTASTS(res.MTASTS.Policy, res.Hosts[i].Name)
		}
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
