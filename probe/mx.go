package probe

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
	"github.com/smtp-exporter/smtp_exporter/tlsrpt"
)

// MXHost is one mail exchanger of a domain (one address of it, with
// addresses: all) and its probe.
type MXHost struct {
	Name       string
	Preference uint16
	Result     *smtp.Result
	// DANE is the exchanger's DANE outcome, with dane: true.
	DANE *DANEResult
	// MTASTSCompliant is, when the domain has an MTA-STS policy, whether
	// the exchanger passes its checks (an mx pattern matches and its
	// certificate is valid for its name), whatever the mode; nil without a
	// policy, or when nothing was dialled.
	MTASTSCompliant *bool
}

// MXResult is the probe of every mail exchanger of a domain.
type MXResult struct {
	Domain string
	// LookupDuration is the time the MX lookup took.
	LookupDuration time.Duration
	// Implicit is true when the domain has no MX records and its own address
	// stands in as the only exchanger (RFC 5321 section 5.1).
	Implicit bool
	// Authenticated is true when the resolver set the AD bit on the MX
	// answer (the records, or the denial that there are any):
	// probe_smtp_mx_lookup_authenticated.
	Authenticated bool
	// Hosts are the exchangers probed, in preference order, ties by name.
	Hosts []MXHost
	// Found is how many exchangers the lookup returned (Hosts may hold fewer,
	// up to the probe's limit).
	Found int
	// Err is a failure of the domain as a whole: of the lookup itself
	// (ReasonResolve, ReasonTimeout, or ReasonNullMX for a domain that
	// accepts no mail, RFC 7505), or a refusal by the address policy
	// (ReasonPolicy, wrapping smtp.ErrPolicy), when nothing was dialled. A
	// failure of one exchanger is in its Result only.
	Err *smtp.Error
	// MTASTS is the domain's MTA-STS discovery (Plan.MTASTS) when a valid
	// policy was fetched; nil when the option is off, the domain publishes
	// no policy, or the lookup failed (MTASTSErr).
	MTASTS *mtasts.Result
	// MTASTSErr is the failure of the MTA-STS lookup or policy fetch, in
	// phase mta_sts: ReasonMTASTS for a published record whose policy cannot
	// be fetched or parsed, ReasonTimeout, or ReasonPolicy (wrapping
	// smtp.ErrPolicy) when the address policy refused the policy host, which
	// also sets Err and stops the probe before anything is dialled.
	MTASTSErr *smtp.Error
	// TLSRPT is the domain's TLS-RPT lookup (Plan.TLSRPT); nil when the
	// option is off or the lookup failed (TLSRPTErr). Its Record is nil when
	// the domain publishes no valid record.
	TLSRPT *tlsrpt.Result
	// TLSRPTErr is a failed TLS-RPT lookup (SERVFAIL, timeout): reported,
	// never a failure of the probe.
	TLSRPTErr error
	Duration  time.Duration
}

// Success judges the domain by mode; an unknown mode judges as
// config.MXSuccessAll.
func (m *MXResult) Success(mode config.MXSuccess) bool {
	if m.Err != nil || len(m.Hosts) == 0 {
		return false
	}
	switch mode {
	case config.MXSuccessAny:
		for _, h := range m.Hosts {
			if h.Result.Success() {
				return true
			}
		}
		return false
	case config.MXSuccessPrimary:
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

// probeMX looks up the MX records of domain and probes up to maxHosts of
// its exchangers (by preference, ties by name) concurrently on port, all
// within the walk's deadline. Transcript lines of each exchanger carry its
// name ("name address" with addresses: all).
//
// With addresses: all, Hosts holds one MXHost per exchanger and address
// probed (same Name and Preference, Result.Addr telling the address); an
// exchanger that failed before an address was chosen (resolution) has one
// entry. With mta_sts the domain's policy is fetched while the MX records
// are looked up, and each exchanger is judged by it after its probe (phase
// mta_sts, reason mta_sts, in enforce mode, unless the exchanger already
// failed); the TLS-RPT record is looked up at the same time.
//
// Every exchanger is resolved, and all of their addresses pass the address
// policy, before any is dialled. If the policy refuses one, nothing is
// dialled: the error is then the *smtp.Error also set in MXResult.Err
// (ReasonPolicy, wrapping smtp.ErrPolicy and the policy's own error), and
// every host's Result fails with ReasonPolicy too. The same holds when the
// policy refuses the MTA-STS policy host (MXResult.Err is then also
// MTASTSErr, in phase mta_sts). That is the only case with a non-nil error:
// a failed lookup is reported in MXResult.Err, a failed exchanger in its
// Result.Err, and the MXResult is never nil.
func (w *walk) probeMX(domain string, port uint16, maxHosts int) (*MXResult, error) {
	start := time.Now()
	res := &MXResult{Domain: domain}
	defer func() { res.Duration = time.Since(start) }()
	w.domain = domain

	checks := w.startDomainChecks(domain)
	mxs, err := w.lookupMX(domain, res)
	res.LookupDuration = time.Since(start)
	checks.wait(w.tr, res)
	if err != nil {
		if res.Err != nil { // the policy refused the MTA-STS policy host
			return res, res.Err
		}
		res.Err = err
		return res, nil
	}
	mxs = dedupMX(w.tr, mxs)
	res.Found = len(mxs)
	if len(mxs) > maxHosts {
		w.tr.Notef("%s has %d MX hosts: probing the first %d", domain, len(mxs), maxHosts)
		mxs = mxs[:maxHosts]
	}
	for _, mx := range mxs {
		w.tr.Notef("MX %d %s", mx.Pref, mx.Host)
	}
	if res.Err != nil { // the policy refused the MTA-STS policy host
		res.Hosts = make([]MXHost, len(mxs))
		for i, mx := range mxs {
			s := smtp.NewSession(w.ctx, mx.Host, port, w.opts, w.tr, mx.Host)
			res.Hosts[i] = MXHost{Name: mx.Host, Preference: mx.Pref,
				Result: s.Done(smtp.PolicyError(fmt.Errorf("not dialled: the mta-sts policy host of %s was refused", domain)))}
		}
		return res, res.Err
	}

	// First every exchanger is resolved and vetted, then (unless the policy
	// refused one) every vetted one is dialled.
	hosts := make([]*hostProbe, len(mxs))
	forEach(len(mxs), func(i int) { hosts[i] = w.prepare(mxs[i].Host, port, mxs[i].Host) })
	if i := slices.IndexFunc(hosts, func(h *hostProbe) bool { return h.err != nil && h.err.Reason == smtp.ReasonPolicy }); i >= 0 {
		refused := mxs[i].Host
		res.Err = &smtp.Error{Phase: smtp.PhaseConnect, Reason: smtp.ReasonPolicy, Err: fmt.Errorf("exchanger %s: %w", refused, hosts[i].err.Err)}
		res.Hosts = make([]MXHost, len(mxs))
		for j, h := range hosts {
			e := h.err
			if e == nil {
				e = smtp.PolicyError(fmt.Errorf("not dialled: exchanger %s of %s was refused", refused, domain))
			}
			res.Hosts[j] = MXHost{Name: mxs[j].Host, Preference: mxs[j].Pref, Result: h.s.Done(e), DANE: h.dane}
		}
		return res, res.Err
	}
	// One dialog per exchanger, or per address of each with addresses: all.
	var dialogs []*dialog
	for i, h := range hosts {
		for _, d := range h.dialogs() {
			dialogs = append(dialogs, d)
			res.Hosts = append(res.Hosts, MXHost{Name: mxs[i].Host, Preference: mxs[i].Pref})
		}
	}
	forEach(len(dialogs), func(i int) {
		d := dialogs[i]
		res.Hosts[i].Result, res.Hosts[i].DANE = d.run(), d.dane
		if res.MTASTS != nil {
			compliant := false // not resolved or vetted: no certificate seen
			if d.prepared == nil {
				compliant = judgeMTASTS(d.s, res.MTASTS.Policy, res.Hosts[i].Name)
			}
			res.Hosts[i].MTASTSCompliant = &compliant
		}
	})
	return res, nil
}

// lookupMX returns the exchangers of domain sorted by preference, then by
// name (equal preferences come in any order; the subset probed under
// maxHosts must not change from one probe to the next), names lower case
// without the trailing dot; for a domain without MX records the domain
// itself (RFC 5321 section 5.1, res.Implicit set). The MX records are asked
// of the module's resolver (or the system's nameservers, in order) with the DO
// and AD bits, and res.Authenticated says whether the resolver
// authenticated the answer or its denial.
func (w *walk) lookupMX(domain string, res *MXResult) ([]*net.MX, *smtp.Error) {
	ctx, tr := w.ctx, w.tr
	resolver, err := dnssec.ResolverAddr(w.opts.Resolver)
	var mxs []*net.MX
	if err == nil {
		mxs, res.Authenticated, err = dnssec.LookupMX(ctx, resolver, domain)
	}
	switch {
	case err == nil && len(mxs) > 0:
		tr.Notef("MX of %s: %d records, DNSSEC-authenticated (the AD bit of resolver %s: %t)", domain, len(mxs), resolver, res.Authenticated)
	case err == nil:
		// No MX records: the domain itself is the implicit exchanger. If the
		// domain does not exist either, its probe fails in resolve.
		res.Implicit = true
		tr.Notef("%s has no MX records (the denial DNSSEC-authenticated: the AD bit of resolver %s: %t): probing the domain itself (implicit MX)",
			domain, resolver, res.Authenticated)
		return []*net.MX{{Host: domain, Pref: 0}}, nil
	default:
		reason := smtp.ReasonResolve
		if ctx.Err() != nil {
			reason = smtp.ReasonTimeout
		}
		e := &smtp.Error{Phase: smtp.PhaseResolve, Reason: reason, Err: w.opts.ResolveError("looking up MX of "+domain, err)}
		tr.Notef("MX lookup failed: %v", e.Err)
		return nil, e
	}
	for _, mx := range mxs {
		if mx.Host == "." || mx.Host == "" {
			e := &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonNullMX, Err: fmt.Errorf("%s publishes a null MX (RFC 7505): it accepts no mail", domain)}
			tr.Notef("%s", e.Err)
			return nil, e
		}
		mx.Host = strings.ToLower(strings.TrimSuffix(mx.Host, "."))
	}
	slices.SortFunc(mxs, func(a, b *net.MX) int {
		return cmp.Or(cmp.Compare(a.Pref, b.Pref), strings.Compare(a.Host, b.Host))
	})
	return mxs, nil
}

// dedupMX keeps one entry per exchanger, named in lower case without the
// trailing dot, at its lowest preference, in the order of mxs otherwise
// (preference, then name). An MX set may name one host twice, in another
// case or at two preferences; a sender tries it once (RFC 5321 5.1), and
// two rows of one host would write duplicate series.
func dedupMX(tr *smtp.Transcript, mxs []*net.MX) []*net.MX {
	kept := make(map[string]*net.MX, len(mxs))
	out := mxs[:0:0]
	for _, mx := range mxs {
		name := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if first, ok := kept[name]; ok {
			first.Pref = min(first.Pref, mx.Pref)
			tr.Notef("MX %d %s: %s is named more than once; probed once, at preference %d", mx.Pref, mx.Host, name, first.Pref)
			continue
		}
		d := &net.MX{Host: name, Pref: mx.Pref}
		kept[name] = d
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return out
}
