package smtp

import (
	"cmp"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

const (
	testUser     = "probe-user"
	testPassword = "s3cr3t-Pa55"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuth(t *testing.T) {
	pki := validPKI(t)
	challenge := "<1896.697170952@mx.test>"
	mac := hmac.New(md5.New, []byte(testPassword))
	mac.Write([]byte(challenge))
	cram := b64(testUser + " " + hex.EncodeToString(mac.Sum(nil)))
	pre := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS", "C: EHLO probe.test", ehloAfterTLS}
	tests := []struct {
		name       string
		mechanism  string
		steps      []string
		wantPhase  Phase
		wantReason Reason
		wantCode   int
		noSecret   bool   // the exchange stops before a credential is sent
		clear      bool   // no STARTTLS: AllowPlaintext
		ehlo       string // the EHLO reply without TLS (default: ehloAfterTLS)
	}{
		{name: "best offered inside TLS is PLAIN", steps: []string{"C: AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword), "S: 235 2.7.0 ok", "C: QUIT", "S: 221 bye"}},
		{name: "best offered without TLS is CRAM-MD5", clear: true, steps: []string{"C: AUTH CRAM-MD5", "S: 334 " + b64(challenge), "C: " + cram, "S: 235 2.7.0 Authentication successful", "C: QUIT", "S: 221 bye"}},
		{name: "without TLS, PLAIN when CRAM-MD5 is not offered", clear: true, ehlo: "S: 250-mx.test\n250 AUTH LOGIN PLAIN",
			steps: []string{"C: AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword), "S: 235 2.7.0 ok", "C: QUIT", "S: 221 bye"}},
		{name: "CRAM-MD5", mechanism: "CRAM-MD5", steps: []string{"C: AUTH CRAM-MD5", "S: 334 " + b64(challenge), "C: " + cram, "S: 235 2.7.0 Authentication successful", "C: QUIT", "S: 221 bye"}},
		{name: "PLAIN", mechanism: "plain", steps: []string{"C: AUTH PLAIN " + b64("\x00"+testUser+"\x00"+testPassword), "S: 235 2.7.0 ok", "C: QUIT", "S: 221 bye"}},
		{name: "LOGIN", mechanism: "LOGIN", steps: []string{"C: AUTH LOGIN", "S: 334 VXNlcm5hbWU6", "C: " + b64(testUser), "S: 334 UGFzc3dvcmQ6", "C: " + b64(testPassword), "S: 235 ok", "C: QUIT", "S: 221 bye"}},
		{name: "wrong password", mechanism: "PLAIN", steps: []string{"C: *", "S: 535 5.7.8 Error: authentication failed: authentication failure", "C: QUIT", "S: 221 bye"},
			wantPhase: PhaseAuth, wantReason: Reason5xx, wantCode: 535},
		{name: "temporary failure", mechanism: "LOGIN", steps: []string{"C: AUTH LOGIN", "S: 454 4.7.0 Temporary authentication failure", "C: QUIT", "S: 221 bye"},
			wantPhase: PhaseAuth, wantReason: Reason4xx, wantCode: 454, noSecret: true},
		{name: "bad CRAM challenge", mechanism: "CRAM-MD5", steps: []string{"C: AUTH CRAM-MD5", "S: 334 !!!notbase64", "C: *", "S: 501 5.7.0 cancelled", "C: QUIT", "S: 221 bye"},
			wantPhase: PhaseAuth, wantReason: ReasonProtocol, noSecret: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := append([]string{}, pre...)
			if tc.clear {
				steps = []string{"S: 220 mx.test", "C: EHLO probe.test", cmp.Or(tc.ehlo, ehloAfterTLS)}
			}
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, append(steps, tc.steps...)...))
			var mu sync.Mutex
			var transcript strings.Builder
			opts := baseOptions()
			opts.TLS = TLSStartTLS
			opts.TLSConfig = &tls.Config{RootCAs: pki.Pool}
			if tc.clear {
				opts.TLS, opts.TLSConfig = TLSNone, nil
			}
			opts.Auth = &Auth{Username: testUser, Password: func() (string, error) { return testPassword, nil }, Mechanism: tc.mechanism, AllowPlaintext: tc.clear}
			opts.Transcript = func(l TranscriptLine) { mu.Lock(); transcript.WriteString(l.String() + "\n"); mu.Unlock() }
			res, err := probeFake(t, srv, opts, 5*time.Second)
			sr := srv.Wait(t)
			if tc.wantPhase == "" {
				if err != nil || sr.Err != nil {
					t.Fatalf("probe: %v; server: %v", err, sr.Err)
				}
			} else {
				var perr *Error
				if !errors.As(err, &perr) || perr.Phase != tc.wantPhase || perr.Reason != tc.wantReason {
					t.Fatalf("err = %v, want %s/%s", err, tc.wantPhase, tc.wantReason)
				}
				if tc.wantCode != 0 && perr.Reply.Code != tc.wantCode {
					t.Errorf("code = %d", perr.Reply.Code)
				}
			}
			mu.Lock()
			out := transcript.String()
			mu.Unlock()
			for _, secret := range []string{testPassword, b64(testPassword), testUser, b64(testUser), cram, b64("\x00" + testUser + "\x00" + testPassword)} {
				if strings.Contains(out, secret) || strings.Contains(err2s(err), secret) {
					t.Errorf("secret %q leaked into the transcript or error:\n%s", secret, out)
				}
			}
			if !tc.noSecret && !strings.Contains(out, redacted) {
				t.Errorf("transcript does not show the redacted line:\n%s", out)
			}
			if got := phases(res); !strings.Contains(got, "ehlo auth") || tc.clear == strings.Contains(got, "starttls") {
				t.Errorf("phases = %q", got)
			}
		})
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestAuthPasswordErrorDialsNothing(t *testing.T) {
	opts := baseOptions()
	opts.TLS = TLSImplicit
	opts.Auth = &Auth{Username: "u", Password: func() (string, error) { return "", errors.New("open /etc/pw: no such file") }}
	srv := smtptest.Start(t, smtptest.OK)
	host, port := splitAddr(t, srv.Addr)
	res, err := Probe(t.Context(), host, port, opts)
	if n := srv.Accepted.Load(); n != 0 {
		t.Errorf("the server accepted %d connections, want none", n)
	}
	var perr *Error
	if !errors.As(err, &perr) || perr.Phase != PhaseAuth || perr.Reason != ReasonConfig {
		t.Fatalf("err = %v", err)
	}
	if len(res.Phases) != 0 {
		t.Errorf("phases = %q", phases(res))
	}
}

func TestAuthRefusesPlaintextByDefault(t *testing.T) {
	opts := baseOptions()
	opts.Auth = &Auth{Username: "u", Password: func() (string, error) { return "p", nil }}
	var ferr *FieldError
	if err := opts.Validate(); !errors.As(err, &ferr) || ferr.Field != "Auth" || !strings.Contains(err.Error(), "AllowPlaintext") {
		t.Fatalf("Validate = %v, want a refusal of Auth naming AllowPlaintext", err)
	}
}
