package smtp

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// validPKI is a test CA and a server certificate for 127.0.0.1, ::1 and
// localhost, valid for 12 hours.
func validPKI(t testing.TB) *testpki.PKI { return testpki.Valid(t, "localhost", "127.0.0.1", "::1") }

const ehloTLS = "S: 250-mx.test\n250-SIZE 1000\n250 STARTTLS"
const ehloAfterTLS = "S: 250-mx.test\n250-SIZE 2000\n250 AUTH PLAIN LOGIN CRAM-MD5"

func TestStartTLS(t *testing.T) {
	pki := validPKI(t)
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, "S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 2.0.0 go ahead", "TLS",
		"C: EHLO probe.test", ehloAfterTLS, "C: QUIT", "S: 221 bye"))
	opts := baseOptions()
	opts.TLS = TLSStartTLS
	opts.TLSConfig = &tls.Config{RootCAs: pki.Pool}
	res, err := probeFake(t, srv, opts, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if sr := srv.Wait(t); sr.Err != nil || sr.Recv != "EHLO probe.test\r\nSTARTTLS\r\nEHLO probe.test\r\nQUIT\r\n" {
		t.Errorf("server: %v, client sent %q", sr.Err, sr.Recv)
	}
	if got := phases(res); got != "resolve connect banner ehlo starttls ehlo quit" {
		t.Errorf("phases = %q", got)
	}
	s := res.TLS
	if s == nil || !s.HandshakeComplete || !s.Verified || s.VerifyError != nil || s.VersionName() != "TLS 1.3" {
		t.Fatalf("tls state = %+v", s)
	}
	if !s.EarliestExpiry().Equal(pki.Leaf.NotAfter) {
		t.Errorf("earliest expiry %s, want the leaf's %s", s.EarliestExpiry(), pki.Leaf.NotAfter)
	}
	// One verified chain, leaf and CA: it lasts as long as its earliest
	// expiry, the leaf's (12 hours, the CA 30 days).
	if len(s.VerifiedChains) != 1 || !s.LastChainExpiry().Equal(pki.Leaf.NotAfter) {
		t.Errorf("verified chains %d, last chain expiry %s, want 1 and %s", len(s.VerifiedChains), s.LastChainExpiry(), pki.Leaf.NotAfter)
	}
	if size, _ := res.MessageSizeLimit(); size != 2000 {
		t.Errorf("size = %d: want the post-STARTTLS EHLO's 2000", size)
	}
	if _, ok := res.Extensions["STARTTLS"]; ok {
		t.Error("extensions still hold the pre-STARTTLS list")
	}
}

func TestTLSFailures(t *testing.T) {
	expired := testpki.New(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "localhost", "127.0.0.1")
	valid := validPKI(t)
	tests := []struct {
		name       string
		pki        *testpki.PKI
		roots      bool
		skipVerify bool
		steps      []string
		implicit   bool
		wantPhase  Phase
		wantReason Reason
		wantCerts  bool
	}{
		{name: "untrusted", pki: valid, steps: []string{"S: 220 mx", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS"},
			wantPhase: PhaseStartTLS, wantReason: ReasonTLS, wantCerts: true},
		{name: "expired", pki: expired, roots: true, steps: []string{"S: 220 mx", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS"},
			wantPhase: PhaseStartTLS, wantReason: ReasonTLS, wantCerts: true},
		{name: "handshake garbage", pki: valid, roots: true, steps: []string{"S: 220 mx", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "AWAIT", "S: 500 this is not TLS", "DRAIN"},
			wantPhase: PhaseStartTLS, wantReason: ReasonTLS},
		{name: "starttls refused", pki: valid, roots: true, steps: []string{"S: 220 mx", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 454 4.7.0 TLS not available due to temporary reason", "C: QUIT", "S: 221 bye"},
			wantPhase: PhaseStartTLS, wantReason: Reason4xx},
		{name: "starttls injection", pki: valid, roots: true, steps: []string{"S: 220 mx", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "RAW: 220 go\r\n250 injected\r\n", "DRAIN"},
			wantPhase: PhaseStartTLS, wantReason: ReasonProtocol},
		{name: "implicit against plain server", pki: valid, roots: true, implicit: true, steps: []string{"S: 220 mx.test plain", "DRAIN"},
			wantPhase: PhaseTLS, wantReason: ReasonTLS},
		{name: "implicit expired", pki: expired, roots: true, implicit: true, steps: []string{"TLS"},
			wantPhase: PhaseTLS, wantReason: ReasonTLS, wantCerts: true},
		{name: "implicit expired but skip verify", pki: expired, skipVerify: true, implicit: true, steps: []string{"TLS", "S: 220 mx", "C: EHLO probe.test", ehloAfterTLS, "C: QUIT", "S: 221 bye"},
			wantCerts: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(tc.pki.Server, tc.steps...))
			opts := baseOptions()
			opts.TLS = TLSStartTLS
			if tc.implicit {
				opts.TLS = TLSImplicit
			}
			opts.TLSConfig = &tls.Config{InsecureSkipVerify: tc.skipVerify}
			if tc.roots {
				opts.TLSConfig.RootCAs = tc.pki.Pool
			}
			var notes []string
			opts.Transcript = func(l TranscriptLine) {
				if l.Dir == Note {
					notes = append(notes, l.Text)
				}
			}
			start := time.Now()
			res, err := probeFake(t, srv, opts, 20*time.Second)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s: a TLS failure must not wait for the timeout", took)
			}
			if tc.wantPhase == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var perr *Error
				if !errors.As(err, &perr) || perr.Phase != tc.wantPhase || perr.Reason != tc.wantReason {
					t.Fatalf("err = %v, want %s/%s", err, tc.wantPhase, tc.wantReason)
				}
			}
			if tc.wantCerts {
				if res.TLS == nil || len(res.TLS.PeerCertificates) == 0 {
					t.Fatalf("no certificates recorded: %+v", res.TLS)
				}
				if !res.TLS.EarliestExpiry().Equal(tc.pki.Leaf.NotAfter) {
					t.Errorf("expiry = %s, want %s", res.TLS.EarliestExpiry(), tc.pki.Leaf.NotAfter)
				}
				if tc.wantPhase != "" && (res.TLS.Verified || res.TLS.VerifyError == nil || len(res.TLS.VerifiedChains) > 0) {
					t.Errorf("verified = %t, error = %v, %d chains", res.TLS.Verified, res.TLS.VerifyError, len(res.TLS.VerifiedChains))
				}
				// A failed verification shows what was presented.
				shown := "presented certificate 0: subject CN=localhost, issuer CN=smtp_exporter test CA, names localhost, 127.0.0.1"
				validity := ", valid " + tc.pki.Leaf.NotBefore.UTC().Format(time.RFC3339) + " to " + tc.pki.Leaf.NotAfter.UTC().Format(time.RFC3339)
				if tc.wantPhase != "" && !slices.ContainsFunc(notes, func(n string) bool {
					return strings.HasPrefix(n, shown) && strings.HasSuffix(n, validity)
				}) {
					t.Errorf("the transcript does not show the presented certificate %q:\n%s", shown, strings.Join(notes, "\n"))
				}
				if tc.skipVerify && (res.TLS.Verified || res.TLS.VerifyError != nil) {
					t.Errorf("skip verify: verified = %t, error = %v", res.TLS.Verified, res.TLS.VerifyError)
				}
			}
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	pki := validPKI(t)
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, "TLS", "S: 220 mx.test", "C: EHLO probe.test", ehloAfterTLS, "C: QUIT", "S: 221 bye"))
	opts := baseOptions()
	opts.TLS = TLSImplicit
	opts.TLSConfig = &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"}
	res, err := probeFake(t, srv, opts, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := phases(res); got != "resolve connect tls banner ehlo quit" {
		t.Errorf("phases = %q", got)
	}
	if res.TLS == nil || !res.TLS.Verified || res.TLS.ServerName != "localhost" {
		t.Errorf("tls = %+v", res.TLS)
	}
}

// TestStartTLSForgetsPlaintextEHLO: RFC 3207 4.2, what the server said
// before TLS is forgotten once the handshake succeeds, so a failed EHLO
// inside TLS leaves no extensions and no size limit.
func TestStartTLSForgetsPlaintextEHLO(t *testing.T) {
	pki := validPKI(t)
	for name, after := range map[string][]string{
		"ehlo refused": {"S: 421 4.3.2 shutting down", "C: QUIT", "S: 221 bye"},
		"ehlo closed":  {"CLOSE"},
	} {
		t.Run(name, func(t *testing.T) {
			steps := append([]string{"S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS", "C: EHLO probe.test"}, after...)
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, steps...))
			opts := baseOptions()
			opts.TLS, opts.TLSConfig = TLSStartTLS, &tls.Config{RootCAs: pki.Pool}
			res, err := probeFake(t, srv, opts, 10*time.Second)
			var perr *Error
			if !errors.As(err, &perr) || perr.Phase != PhaseEHLO {
				t.Fatalf("err = %v, want a failure in ehlo", err)
			}
			if res.Extensions != nil {
				t.Errorf("extensions = %v, want none after a failed EHLO inside TLS", res.Extensions)
			}
			if size, ok := res.MessageSizeLimit(); ok {
				t.Errorf("size limit = %d from the plaintext EHLO", size)
			}
			if res.TLS == nil || !res.TLS.HandshakeComplete {
				t.Errorf("tls = %+v", res.TLS)
			}
		})
	}
}

// TestSessionServerName checks Session.SetServerName: the server receives
// the caller's name as SNI, while WebPKI still checks the usual name (the
// host, or tls_config.server_name), which MTA-STS relies on.
func TestSessionServerName(t *testing.T) {
	pki := validPKI(t)
	for _, tc := range []struct {
		name, sni, configured string
		wantSNI, wantChecked  string
	}{
		{name: "default: the host", wantSNI: "localhost", wantChecked: "localhost"},
		{name: "tls_config.server_name", configured: "mx.example.test", wantSNI: "mx.example.test", wantChecked: "mx.example.test"},
		{name: "the caller's", sni: "mx.base.test", wantSNI: "mx.base.test", wantChecked: "localhost"},
		{name: "the caller's over tls_config.server_name", sni: "mx.base.test", configured: "localhost",
			wantSNI: "mx.base.test", wantChecked: "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			cfg := pki.Server.Clone()
			cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				got <- hello.ServerName
				return nil, nil
			}
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(cfg, "S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS",
				"S: 220 2.0.0 go ahead", "TLS", "C: EHLO probe.test", ehloAfterTLS, "C: QUIT", "S: 221 bye"))
			opts := baseOptions()
			opts.TLS = TLSStartTLS
			opts.TLSConfig = &tls.Config{RootCAs: pki.Pool, ServerName: tc.configured}
			ctx, cancel := WithDefaultDeadline(t.Context())
			defer cancel()
			s := NewSession(ctx, "localhost", srv.Port, opts, nil, "")
			s.SetServerName(tc.sni)
			if _, err := s.Prepare(false); err != nil {
				t.Fatal(err)
			}
			res := s.Done(s.Run())
			srv.Wait(t)
			if sni := <-got; sni != tc.wantSNI {
				t.Errorf("the server received SNI %q, want %q", sni, tc.wantSNI)
			}
			wantOK := tc.wantChecked == "localhost"
			if res.TLS == nil || res.TLS.ServerName != tc.wantChecked || res.TLS.Verified != wantOK {
				t.Errorf("tls state %+v: want the certificate checked for %s (verified %t)", res.TLS, tc.wantChecked, wantOK)
			}
			if wantOK && res.Err != nil {
				t.Errorf("probe failed: %v", res.Err)
			}
		})
	}
}
