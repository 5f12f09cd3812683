package smtp

import (
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
	// Hosts are the exchangers probed, in preference order.
	Hosts []MXHost
	// Found is how many exchangers the lookup returned (Hosts may hold fewer,
	// up to the probe's limit).
	Found int
	// Err is a failure of the lookup itself: ReasonResolve, ReasonTimeout,
	// or ReasonNullMX for a domain that accepts no mail (RFC 7505).
	Err      *Error
	Duration time.Duration
}

// MX success modes: which exchangers must succeed for the domain to.
const (
	MXSuccessAll     = "all"     // every exchanger probed
	MXSuccessAny     = "any"     // at least one
	MXSuccessPrimary = "primary" // every exchanger with the lowest preference value
)

// Success judges the domain by mode.
func (m *MXResult) Success(mode string) bool {
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
// exchangers (by preference) concurrently on port, all within ctx's deadline.
// Transcript lines of each host carry its name in TranscriptLine.Host.
func ProbeMX(ctx context.Context, domain string, port uint16, opts *Options, maxHosts int) *MXResult {
	start := time.Now()
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	res := &MXResult{Domain: domain}
	defer func() { res.Duration = time.Since(start) }()
	emit := func(format string, args ...any) {
		if opts.Transcript != nil {
			opts.Transcript(TranscriptLine{At: time.Since(start), Dir: Note, Text: fmt.Sprintf(format, args...)})
		}
	}
	r := opts.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	mxs, err := r.LookupMX(ctx, domain)
	res.LookupDuration = time.Since(start)
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(mxs) > 0:
	case err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound && ctx.Err() == nil):
		// No MX records: the domain itself is the implicit exchanger. If the
		// domain does not exist either, its probe fails in resolve.
		res.Implicit = true
		mxs = []*net.MX{{Host: domain, Pref: 0}}
		emit("%s has no MX records: probing the domain itself (implicit MX)", domain)
	default:
		reason := ReasonResolve
		if ctx.Err() != nil {
			reason = ReasonTimeout
		}
		res.Err = &Error{Phase: PhaseResolve, Reason: reason, Err: fmt.Errorf("looking up MX of %s: %w", domain, err)}
		emit("MX lookup failed: %v", err)
		return res
	}
	for _, mx := range mxs {
		if mx.Host == "." || mx.Host == "" {
			res.Err = &Error{Phase: PhaseResolve, Reason: ReasonNullMX, Err: fmt.Errorf("%s publishes a null MX (RFC 7505): it accepts no mail", domain)}
			emit("%s", res.Err.Err)
			return res
		}
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	res.Found = len(mxs)
	if len(mxs) > maxHosts {
		emit("%s has %d MX hosts: probing the first %d", domain, len(mxs), maxHosts)
		mxs = mxs[:maxHosts]
	}
	res.Hosts = make([]MXHost, len(mxs))
	var wg sync.WaitGroup
	var mu sync.Mutex // serialises transcript lines of concurrent probes
	for i, mx := range mxs {
		name := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		emit("MX %d %s", mx.Pref, name)
		res.Hosts[i] = MXHost{Name: name, Preference: mx.Pref}
		hostOpts := *opts
		if opts.Transcript != nil {
			offset := time.Since(start) // host probes time their lines from their own start
			hostOpts.Transcript = func(l TranscriptLine) {
				mu.Lock()
				defer mu.Unlock()
				l.Host = name
				l.At += offset
				opts.Transcript(l)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Hosts[i].Result, _ = Probe(ctx, name, port, &hostOpts)
		}()
	}
	wg.Wait()
	return res
}
