package probe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// DANEResult is what a probe with dane: true reports about one host (one
// address of it: every address of a host shares the host's lookup and has
// its verdict of its own).
type DANEResult struct {
	// TLSA is the lookup's outcome (nil if it was not made).
	TLSA *dane.TLSAResult
	// LookupErr is a failed lookup (SERVFAIL, timeout).
	LookupErr error
	// NextHop is the next-hop domain, a reference name of the DANE-TA name
	// checks besides the TLSA base domain (RFC 7672 3.2.2): the recipient
	// domain of an mx_lookup probe, else the host itself.
	NextHop string
	// Checked is true when DANE applied and a certificate was checked.
	Checked bool
	// Match is the record that matched, when one did.
	Match *dane.Match
	// VerifyErr says why the certificate matched no record, or why it was
	// not checked although DANE applied (no STARTTLS).
	VerifyErr error
}

// NewDANEResult records the outcome of dane.LookupTLSA. A failed lookup is the
// probe's failure, in phase resolve (the TLSA lookup belongs to name
// resolution, before anything is dialled): smtp.ReasonTimeout when the deadline
// passed, else ReasonDANE (a SERVFAIL is what a validating resolver answers
// to bogus data, and a DANE sender defers delivery then).
func NewDANEResult(tlsa *dane.TLSAResult, err error) (*DANEResult, *smtp.Error) {
	d := &DANEResult{TLSA: tlsa, LookupErr: err}
	if err == nil {
		return d, nil
	}
	reason := ReasonDANE
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		reason = smtp.ReasonTimeout
	}
	return d, &smtp.Error{Phase: smtp.PhaseResolve, Reason: reason, Err: err}
}

// Applies reports whether DANE decides this host's TLS (see
// dane.TLSAResult.Applies).
func (d *DANEResult) Applies() bool { return d != nil && d.TLSA.Applies() }

// CheckTLS checks the chain the server presented in phase (smtp.PhaseStartTLS,
// or smtp.PhaseTLS for implicit TLS) when DANE applies; it returns nil when DANE
// does not apply or the chain matched, else a ReasonDANE failure. When DANE
// applies, it replaces WebPKI verification (RFC 7672 3).
func (d *DANEResult) CheckTLS(phase smtp.Phase, chain []*x509.Certificate) *smtp.Error {
	if !d.Applies() {
		return nil
	}
	d.Checked = true
	d.Match, d.VerifyErr = d.TLSA.Verify(chain, d.NextHop)
	if d.VerifyErr != nil {
		return &smtp.Error{Phase: phase, Reason: ReasonDANE, Err: fmt.Errorf("dane: %w", d.VerifyErr)}
	}
	return nil
}

// ErrDANENoSTARTTLS is the failure of a server that does not offer STARTTLS
// although authenticated TLSA records exist, usable or not.
var ErrDANENoSTARTTLS = errors.New("the server does not offer STARTTLS, which its DNSSEC-authenticated TLSA records make mandatory (RFC 7672 2.2)")

// RequiresTLS reports whether the host's TLSA records make TLS mandatory
// (see dane.TLSAResult.RequiresTLS): when DANE applies, and also when every
// authenticated record is unusable.
func (d *DANEResult) RequiresTLS() bool { return d != nil && d.TLSA.RequiresTLS() }

// CheckNoTLS is called when the server did not offer STARTTLS: where the
// TLSA records make TLS mandatory, that fails the probe in phase starttls
// with ReasonDANE (a DANE sender does not deliver in the clear).
func (d *DANEResult) CheckNoTLS() *smtp.Error {
	if !d.RequiresTLS() {
		return nil
	}
	d.VerifyErr = ErrDANENoSTARTTLS
	return &smtp.Error{Phase: smtp.PhaseStartTLS, Reason: ReasonDANE, Err: ErrDANENoSTARTTLS}
}

// UsableRecords is probe_smtp_dane_tlsa_records.
func (d *DANEResult) UsableRecords() int {
	if d == nil || d.TLSA == nil {
		return 0
	}
	return len(d.TLSA.Usable())
}

// Authenticated is probe_smtp_dane_authenticated.
func (d *DANEResult) Authenticated() bool { return d != nil && d.TLSA != nil && d.TLSA.Authenticated }

// Verified is probe_smtp_dane_verified: ok is false when the series is
// absent: no authenticated usable record, or DANE applied but no verdict was
// reached (the probe failed, or its expectations stopped it, before the
// handshake: a connection refused is not a DANE mismatch). A server without
// STARTTLS where DANE applies is a verdict: not verified.
func (d *DANEResult) Verified() (verified, ok bool) {
	if !d.Applies() || (!d.Checked && d.VerifyErr == nil) {
		return false, false
	}
	return d.Match != nil, true
}

// forAddr is a fresh verdict on the same lookup, for one address of the
// host.
func (d *DANEResult) forAddr() *DANEResult {
	if d == nil {
		return nil
	}
	return &DANEResult{TLSA: d.TLSA, LookupErr: d.LookupErr, NextHop: d.NextHop}
}

// join is how the DANE verdict joins s's dialog. When DANE applies, the TLSA
// base domain is sent as SNI (RFC 7672 8.1) and the TLSA records replace
// WebPKI as the judge of the certificate, STARTTLS being mandatory. When
// the authenticated records are all unusable, STARTTLS is still mandatory
// but WebPKI decides, as the module says (Postfix and mox encrypt without
// verifying then; see the README). Otherwise WebPKI alone decides.
func (d *DANEResult) join(s *smtp.Session) {
	switch {
	case d.Applies():
		base := d.TLSA.BaseDomain
		s.SetServerName(base)
		s.Notef("DANE: SNI %s (the TLSA base domain); the leaf of a DANE-TA chain must be issued to one of %s",
			base, strings.Join(d.TLSA.ReferenceNames(d.NextHop), ", "))
		s.SetTLSCheck(&smtp.TLSCheck{
			Decides: true,
			Verify: func(phase smtp.Phase, st *smtp.TLSState) *smtp.Error {
				if failure := d.CheckTLS(phase, st.PeerCertificates); failure != nil {
					s.Notef("DANE: %v", failure.Err)
					return failure
				}
				s.Notef("DANE: the certificate at depth %d matched TLSA %s (verified)", d.Match.Depth, d.Match.Record)
				return nil
			},
			NoSTARTTLS: d.CheckNoTLS,
		})
	case d.RequiresTLS():
		s.SetTLSCheck(&smtp.TLSCheck{NoSTARTTLS: d.CheckNoTLS})
	default:
		s.SetTLSCheck(nil)
	}
}

// daneSummary says what the TLSA lookup found, whose AD bit it trusted, and
// whether DANE applies.
func daneSummary(r *dane.TLSAResult) string {
	if !r.HostAuthenticated {
		return fmt.Sprintf("DANE does not apply: the address of %s is not DNSSEC-authenticated (no AD bit from resolver %s), "+
			"so %s is not looked up (RFC 7672 2.2)", r.Host, r.Resolver, r.Name)
	}
	s := fmt.Sprintf("TLSA %s via the DANE lookup: %d records, %d usable, authenticated: %t, address authenticated: %t (the AD bits of resolver %s)",
		r.Name, len(r.Records), len(r.Usable()), r.Authenticated, r.HostAuthenticated, r.Resolver)
	switch {
	case r.Applies():
		return s + ": DANE applies (STARTTLS mandatory, the certificate must match a record)"
	case !r.Authenticated:
		return s + ": DANE does not apply (the TLSA answer is not DNSSEC-authenticated)"
	case r.Denied:
		return s + ": DANE does not apply (authenticated denial: no TLSA records)"
	case r.RequiresTLS():
		return s + ": no usable record, yet STARTTLS is mandatory (RFC 7672 2.2); WebPKI judges the certificate as the module says"
	}
	return s + ": DANE does not apply (no usable record)"
}
