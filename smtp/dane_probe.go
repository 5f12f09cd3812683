package smtp

import (
	"fmt"
	"time"
)

// This file runs DANE (RFC 7672) inside a probe: the TLSA lookup after
// resolution, the certificate check after the handshake.

// lookupDANE looks up the host's TLSA records when Options.DANE asks for it
// (not for an IP literal, nor with TLS none) and records them in
// Result.DANE. Its time counts in the resolve phase, which is where a failed
// lookup fails the probe (see NewDANEResult).
func (p *prober) lookupDANE(literal bool) *Error {
	if !p.opts.DANE || literal || p.opts.TLS == TLSNone || p.opts.TLS == "" {
		return nil
	}
	t := time.Now()
	tlsa, err := LookupTLSA(p.ctx, p.opts.Resolver, p.res.Host, p.res.Port)
	d, failure := NewDANEResult(tlsa, err)
	p.res.DANE = d
	if n := len(p.res.Phases); n > 0 && p.res.Phases[n-1].Phase == PhaseResolve {
		p.res.Phases[n-1].Duration += time.Since(t)
	}
	if failure != nil {
		return failure
	}
	p.note("%s", daneSummary(tlsa))
	return nil
}

// daneSummary says what the TLSA lookup found and whether DANE applies.
func daneSummary(r *TLSAResult) string {
	s := fmt.Sprintf("TLSA %s via the DANE lookup: %d records, %d usable, authenticated: %t, address authenticated: %t",
		r.Name, len(r.Records), len(r.Usable()), r.Authenticated, r.HostAuthenticated)
	switch {
	case r.Applies():
		return s + ": DANE applies (STARTTLS mandatory, the certificate must match a record)"
	case !r.HostAuthenticated:
		return s + ": DANE does not apply (the host's address is not DNSSEC-authenticated)"
	case !r.Authenticated:
		return s + ": DANE does not apply (the TLSA answer is not DNSSEC-authenticated)"
	case r.Denied:
		return s + ": DANE does not apply (authenticated denial: no TLSA records)"
	}
	return s + ": DANE does not apply (no usable record)"
}

// checkDANE checks the handshake's chain against the TLSA records when DANE
// applies (phase: where the handshake was).
func (p *prober) checkDANE(phase Phase) *Error {
	d := p.res.DANE
	if !d.Applies() || p.res.TLS == nil {
		return nil
	}
	if failure := d.CheckTLS(phase, p.res.TLS.PeerCertificates); failure != nil {
		p.note("DANE: %v", failure.Err)
		return failure
	}
	p.note("DANE: the certificate at depth %d matched TLSA %s (verified)", d.Match.Depth, d.Match.Record)
	return nil
}
