package smtp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
)

// DANEResult is what a probe with dane: true reports about one host.
type DANEResult struct {
	// TLSA is the lookup's outcome (nil if it was not made).
	TLSA *TLSAResult
	// LookupErr is a failed lookup (SERVFAIL, timeout).
	LookupErr error
	// Checked is true when DANE applied and a certificate was checked.
	Checked bool
	// Match is the record that matched, when one did.
	Match *DANEMatch
	// VerifyErr says why the certificate matched no record, or why it was
	// not checked although DANE applied (no STARTTLS).
	VerifyErr error
}

// NewDANEResult records the outcome of LookupTLSA. A failed lookup is the
// probe's failure, in phase resolve (the TLSA lookup belongs to name
// resolution, before anything is dialled): ReasonTimeout when the deadline
// passed, else ReasonDANE (a SERVFAIL is what a validating resolver answers
// to bogus data, and a DANE sender defers delivery then).
func NewDANEResult(tlsa *TLSAResult, err error) (*DANEResult, *Error) {
	d := &DANEResult{TLSA: tlsa, LookupErr: err}
	if err == nil {
		return d, nil
	}
	reason := ReasonDANE
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		reason = ReasonTimeout
	}
	return d, &Error{Phase: PhaseResolve, Reason: reason, Err: err}
}

// Applies reports whether DANE decides this host's TLS (see
// TLSAResult.Applies).
func (d *DANEResult) Applies() bool { return d != nil && d.TLSA.Applies() }

// CheckTLS checks the chain the server presented in phase (PhaseStartTLS,
// or PhaseTLS for implicit TLS) when DANE applies; it returns nil when DANE
// does not apply or the chain matched, else a ReasonDANE failure. When DANE
// applies, it replaces WebPKI verification (RFC 7672 3).
func (d *DANEResult) CheckTLS(phase Phase, chain []*x509.Certificate) *Error {
	if !d.Applies() {
		return nil
	}
	d.Checked = true
	d.Match, d.VerifyErr = d.TLSA.Verify(chain)
	if d.VerifyErr != nil {
		return &Error{Phase: phase, Reason: ReasonDANE, Err: fmt.Errorf("dane: %w", d.VerifyErr)}
	}
	return nil
}

// ErrDANENoSTARTTLS is the failure of a server that does not offer STARTTLS
// although usable, authenticated TLSA records exist.
var ErrDANENoSTARTTLS = errors.New("the server does not offer STARTTLS, which its TLSA records make mandatory (RFC 7672 2.2)")

// CheckNoTLS is called when the server did not offer STARTTLS: with DANE
// applying, that fails the probe in phase starttls with ReasonDANE.
func (d *DANEResult) CheckNoTLS() *Error {
	if !d.Applies() {
		return nil
	}
	d.VerifyErr = ErrDANENoSTARTTLS
	return &Error{Phase: PhaseStartTLS, Reason: ReasonDANE, Err: ErrDANENoSTARTTLS}
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
