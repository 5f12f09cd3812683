package probe

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestDANEResultMetrics checks the values the exporter's DANE series take.
func TestDANEResultMetrics(t *testing.T) {
	pki := testpki.Valid(t, "mx.example.test")
	ee := mustTLSA(t, pki.Leaf, 3)
	secure := &dane.TLSAResult{Records: []dane.TLSARecord{ee, mustTLSA(t, pki.Leaf, 1)}, HostAuthenticated: true, Authenticated: true}
	for _, tc := range []struct {
		name              string
		res               *DANEResult
		records           int
		auth              bool
		verified, present bool
	}{
		{name: "nil", res: nil},
		{name: "no lookup", res: &DANEResult{}},
		{name: "matched", res: &DANEResult{TLSA: secure, Checked: true, Match: &dane.Match{Record: ee}},
			records: 1, auth: true, verified: true, present: true},
		{name: "mismatched", res: &DANEResult{TLSA: secure, Checked: true, VerifyErr: dane.ErrMismatch},
			records: 1, auth: true, present: true},
		{name: "applies, but no verdict (the probe stopped before TLS)", res: &DANEResult{TLSA: secure},
			records: 1, auth: true},
		{name: "not authenticated", res: &DANEResult{TLSA: &dane.TLSAResult{Records: []dane.TLSARecord{ee}}}, records: 1},
		{name: "address not authenticated", res: &DANEResult{TLSA: &dane.TLSAResult{Records: []dane.TLSARecord{ee}, Authenticated: true}},
			records: 1, auth: true},
		{name: "authenticated denial", res: &DANEResult{TLSA: &dane.TLSAResult{Authenticated: true, Denied: true}}, auth: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := tc.res.Verified()
			if tc.res.UsableRecords() != tc.records || tc.res.Authenticated() != tc.auth || v != tc.verified || ok != tc.present {
				t.Errorf("records %d authenticated %t verified %t present %t; want %d %t %t %t",
					tc.res.UsableRecords(), tc.res.Authenticated(), v, ok, tc.records, tc.auth, tc.verified, tc.present)
			}
		})
	}
}

func TestDANEChecks(t *testing.T) {
	pki := testpki.Valid(t, "mx.example.test")
	other := testpki.Valid(t, "mx.example.test")
	chain := []*x509.Certificate{pki.Leaf, pki.CA}
	applies := func() *dane.TLSAResult {
		return &dane.TLSAResult{Host: "mx.example.test", BaseDomain: "mx.example.test", HostAuthenticated: true, Authenticated: true,
			Records: []dane.TLSARecord{mustTLSA(t, pki.CA, 2)}}
	}
	notAuth := func() *dane.TLSAResult { r := applies(); r.Authenticated = false; return r }
	unusable := func() *dane.TLSAResult {
		r := applies()
		r.Records = []dane.TLSARecord{mustTLSA(t, pki.CA, 0), mustTLSA(t, pki.Leaf, 1)}
		return r
	}

	t.Run("lookup failures", func(t *testing.T) {
		for _, tc := range []struct {
			err        error
			wantReason smtp.Reason
		}{
			{fmt.Errorf("tlsa lookup: %w", dnssec.ErrServFail), ReasonDANE},
			{fmt.Errorf("tlsa lookup: %w", context.DeadlineExceeded), smtp.ReasonTimeout},
		} {
			d, perr := NewDANEResult(&dane.TLSAResult{}, tc.err)
			if perr == nil || perr.Phase != smtp.PhaseResolve || perr.Reason != tc.wantReason || !errors.Is(perr, tc.err) || d.LookupErr != tc.err {
				t.Errorf("NewDANEResult(%v) = %v, want phase resolve, reason %s", tc.err, perr, tc.wantReason)
			}
		}
		if d, perr := NewDANEResult(applies(), nil); perr != nil || !d.Applies() {
			t.Errorf("a good lookup gave %v, applies %t", perr, d.Applies())
		}
	})
	for _, tc := range []struct {
		name      string
		tlsa      *dane.TLSAResult
		chain     []*x509.Certificate // nil: STARTTLS not offered
		phase     smtp.Phase
		wantErr   bool
		wantPhase smtp.Phase
		verified  bool
		present   bool
		wantIs    error
	}{
		{name: "match", tlsa: applies(), chain: chain, phase: smtp.PhaseStartTLS, verified: true, present: true},
		{name: "mismatch", tlsa: applies(), chain: []*x509.Certificate{other.Leaf, other.CA}, phase: smtp.PhaseStartTLS,
			wantErr: true, wantPhase: smtp.PhaseStartTLS, present: true, wantIs: dane.ErrMismatch},
		{name: "mismatch over implicit tls", tlsa: applies(), chain: []*x509.Certificate{other.Leaf}, phase: smtp.PhaseTLS,
			wantErr: true, wantPhase: smtp.PhaseTLS, present: true, wantIs: dane.ErrMismatch},
		{name: "no starttls where dane applies", tlsa: applies(), wantErr: true, wantPhase: smtp.PhaseStartTLS, present: true,
			wantIs: ErrDANENoSTARTTLS},
		{name: "not authenticated: any certificate", tlsa: notAuth(), chain: []*x509.Certificate{other.Leaf}, phase: smtp.PhaseStartTLS},
		{name: "not authenticated: no starttls is fine", tlsa: notAuth()},
		{name: "only unusable records: any certificate (WebPKI judges)", tlsa: unusable(), chain: []*x509.Certificate{other.Leaf},
			phase: smtp.PhaseStartTLS},
		{name: "only unusable records: no starttls fails", tlsa: unusable(), wantErr: true, wantPhase: smtp.PhaseStartTLS,
			wantIs: ErrDANENoSTARTTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := NewDANEResult(tc.tlsa, nil)
			var perr *smtp.Error
			if tc.chain != nil {
				perr = d.CheckTLS(tc.phase, tc.chain)
			} else {
				perr = d.CheckNoTLS()
			}
			if (perr != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %t", perr, tc.wantErr)
			}
			if perr != nil && (perr.Phase != tc.wantPhase || perr.Reason != ReasonDANE || !errors.Is(perr, tc.wantIs)) {
				t.Errorf("err = %v (phase %s reason %s), want phase %s reason dane wrapping %v", perr, perr.Phase, perr.Reason, tc.wantPhase, tc.wantIs)
			}
			if v, ok := d.Verified(); v != tc.verified || ok != tc.present {
				t.Errorf("verified %t present %t, want %t %t", v, ok, tc.verified, tc.present)
			}
		})
	}
}
