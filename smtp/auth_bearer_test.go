package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

const testToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm9iZSJ9.c2lnbmF0dXJl-_~+/="

// TestBearerAuth plays XOAUTH2 and OAUTHBEARER against scripted servers:
// the exact bytes the client sends, the error challenge answered as each
// mechanism asks, and a token failure that sends no AUTH at all.
func TestBearerAuth(t *testing.T) {
	pki := validPKI(t)
	xoauth2 := b64("user=" + testUser + "\x01auth=Bearer " + testToken + "\x01\x01")
	oauthbearer := b64("n,a=" + testUser + ",\x01auth=Bearer " + testToken + "\x01\x01")
	errJSON := b64(`{"status":"invalid_token","schemes":"bearer","scope":"https://mail.example/"}`)
	ehlo := "S: 250-mx.test\n250 AUTH PLAIN XOAUTH2 OAUTHBEARER"
	pre := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS", "C: EHLO probe.test", ehlo}
	tokenErr := errors.New(`token endpoint https://login.example/token: 401 Unauthorized: "invalid_client"`)
	tests := []struct {
		name       string
		mechanism  string
		user       string // default testUser
		ehlo       string // the EHLO reply inside TLS (default: ehlo)
		token      string // default testToken
		tokenErr   error
		steps      []string
		wantReason Reason // "" for success
		wantCode   int
		wantErr    string // in the error text
		noToken    bool   // Token must not be called
		noAuth     bool   // no AUTH command is sent
	}{
		{name: "XOAUTH2", mechanism: "XOAUTH2",
			steps: []string{"C: AUTH XOAUTH2 " + xoauth2, "S: 235 2.7.0 Accepted", "C: QUIT", "S: 221 bye"}},
		{name: "OAUTHBEARER", mechanism: "oauthbearer",
			steps: []string{"C: AUTH OAUTHBEARER " + oauthbearer, "S: 235 2.7.0 Accepted", "C: QUIT", "S: 221 bye"}},
		{name: "OAUTHBEARER escapes the user in the GS2 header", mechanism: "OAUTHBEARER", user: "a=b,c@example.org",
			steps: []string{"C: AUTH OAUTHBEARER " + b64("n,a=a=3Db=2Cc@example.org,\x01auth=Bearer "+testToken+"\x01\x01"), "S: 235 ok", "C: QUIT", "S: 221 bye"}},
		{name: "XOAUTH2 refused: error challenge answered with an empty line", mechanism: "XOAUTH2",
			steps:      []string{"C: AUTH XOAUTH2 " + xoauth2, "S: 334 " + errJSON, "C: ", "S: 535 5.7.8 Username and Password not accepted", "C: QUIT", "S: 221 bye"},
			wantReason: Reason5xx, wantCode: 535, wantErr: `the server refused the bearer token: {"status":"invalid_token"`},
		{name: "OAUTHBEARER refused: error challenge answered with the dummy ^A", mechanism: "OAUTHBEARER",
			steps:      []string{"C: AUTH OAUTHBEARER " + oauthbearer, "S: 334 " + errJSON, "C: AQ==", "S: 535 5.7.8 Authentication failed", "C: QUIT", "S: 221 bye"},
			wantReason: Reason5xx, wantCode: 535, wantErr: `"status":"invalid_token"`},
		{name: "refused outright with 535", mechanism: "XOAUTH2",
			steps:      []string{"C: AUTH XOAUTH2 " + xoauth2, "S: 535 5.7.3 Authentication unsuccessful", "C: QUIT", "S: 221 bye"},
			wantReason: Reason5xx, wantCode: 535},
		{name: "temporary failure", mechanism: "OAUTHBEARER",
			steps:      []string{"C: AUTH OAUTHBEARER " + oauthbearer, "S: 454 4.7.0 Temporary authentication failure", "C: QUIT", "S: 221 bye"},
			wantReason: Reason4xx, wantCode: 454},
		{name: "a second challenge is cancelled", mechanism: "OAUTHBEARER",
			steps:      []string{"C: AUTH OAUTHBEARER " + oauthbearer, "S: 334 " + errJSON, "C: AQ==", "S: 334 " + errJSON, "C: *", "S: 501 5.7.0 cancelled", "C: QUIT", "S: 221 bye"},
			wantReason: ReasonProtocol, wantErr: "second challenge"},
		{name: "token endpoint failed: no AUTH, polite QUIT", mechanism: "XOAUTH2", tokenErr: tokenErr,
			steps:      []string{"C: QUIT", "S: 221 bye"},
			wantReason: ReasonToken, wantErr: `401 Unauthorized: "invalid_client"`, noAuth: true},
		{name: "a token with a control byte is not sent", mechanism: "XOAUTH2", token: "abc\x01auth=Bearer evil",
			steps:      []string{"C: QUIT", "S: 221 bye"},
			wantReason: ReasonToken, wantErr: "not visible ASCII (0x01 at offset 3)", noAuth: true},
		{name: "an over-long token is not sent", mechanism: "OAUTHBEARER", token: strings.Repeat("a", maxBearerToken+1),
			steps:      []string{"C: QUIT", "S: 221 bye"},
			wantReason: ReasonToken, wantErr: "more than the 8192", noAuth: true},
		{name: "mechanism not offered: no token asked for", mechanism: "OAUTHBEARER", ehlo: "S: 250-mx.test\n250 AUTH PLAIN XOAUTH2",
			steps:      []string{"C: QUIT", "S: 221 bye"},
			wantReason: ReasonUnsupported, wantErr: "AUTH OAUTHBEARER", noToken: true, noAuth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := append([]string{}, pre...)
			if tc.ehlo != "" {
				steps[len(steps)-1] = tc.ehlo
			}
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, append(steps, tc.steps...)...))
			token := tc.token
			if token == "" {
				token = testToken
			}
			var calls atomic.Int32
			var mu sync.Mutex
			var transcript strings.Builder
			opts := baseOptions()
			opts.TLS, opts.TLSConfig = TLSStartTLS, &tls.Config{RootCAs: pki.Pool}
			user := tc.user
			if user == "" {
				user = testUser
			}
			opts.Auth = &Auth{Username: user, Mechanism: tc.mechanism, Token: func(ctx context.Context) (string, string, error) {
				calls.Add(1)
				if _, ok := ctx.Deadline(); !ok {
					return "", "", errors.New("Token got a context without the probe's deadline")
				}
				if tc.tokenErr != nil {
					return "", "", tc.tokenErr
				}
				return token, "bearer token from the test", nil
			}}
			opts.Transcript = func(l TranscriptLine) { mu.Lock(); transcript.WriteString(l.String() + "\n"); mu.Unlock() }
			if err := opts.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			res, err := probeFake(t, srv, opts, 5*time.Second)
			sr := srv.Wait(t)
			if sr.Err != nil {
				t.Fatalf("server: %v\nclient sent:\n%q", sr.Err, sr.Recv)
			}
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("probe: %v", err)
				}
			} else {
				var perr *Error
				if !errors.As(err, &perr) || perr.Phase != PhaseAuth || perr.Reason != tc.wantReason {
					t.Fatalf("err = %v, want auth/%s", err, tc.wantReason)
				}
				if tc.wantCode != 0 && (perr.Reply == nil || perr.Reply.Code != tc.wantCode) {
					t.Errorf("deciding reply = %v, want %d", perr.Reply, tc.wantCode)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %q, want it to say %q", err, tc.wantErr)
				}
			}
			if n := calls.Load(); (n == 0) != tc.noToken || n > 1 {
				t.Errorf("Token called %d times", n)
			}
			if got := strings.Contains(sr.Recv, "AUTH "); got == tc.noAuth {
				t.Errorf("AUTH sent: %t, want %t; client sent:\n%q", got, !tc.noAuth, sr.Recv)
			}
			mu.Lock()
			out := transcript.String()
			mu.Unlock()
			for _, secret := range []string{token, xoauth2, oauthbearer, b64(token)} {
				if strings.Contains(out, secret) || strings.Contains(err2s(err), secret) {
					t.Errorf("secret %q leaked into the transcript or error:\n%s\n%v", secret, out, err)
				}
			}
			if !tc.noAuth && !strings.Contains(out, "C: AUTH "+strings.ToUpper(tc.mechanism)+" <redacted>") {
				t.Errorf("transcript lacks the redacted AUTH line:\n%s", out)
			}
			if !tc.noToken && !strings.Contains(phases(res), "ehlo auth") {
				t.Errorf("phases = %q, want an auth phase for the token step", phases(res))
			}
			if !tc.noToken && tc.tokenErr == nil && !strings.Contains(out, "bearer token from the test") {
				t.Errorf("transcript lacks the token's note:\n%s", out)
			}
		})
	}
}

// TestBearerEchoScrubbed: a server that echoes the token, the SASL response
// or its base64, in the error challenge or the final reply, leaves no trace
// of them in the Result, the error or the transcript.
func TestBearerEchoScrubbed(t *testing.T) {
	pki := validPKI(t)
	raw := "n,a=" + testUser + ",\x01auth=Bearer " + testToken + "\x01\x01"
	resp := b64(raw)
	pre := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS", "C: EHLO probe.test", "S: 250-mx.test\n250 AUTH OAUTHBEARER"}
	for _, tc := range []struct {
		name  string
		steps []string
	}{
		{"in the 535", []string{"C: AUTH OAUTHBEARER " + resp, "S: 535-5.7.8 you sent " + resp + "\n535 5.7.8 token " + testToken + " is bad", "C: QUIT", "S: 221 bye"}},
		{"in the error challenge", []string{"C: AUTH OAUTHBEARER " + resp, "S: 334 " + b64(`{"status":"invalid_token","token":"`+testToken+`"}`), "C: AQ==",
			"S: 535 5.7.8 " + raw, "C: QUIT", "S: 221 bye"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, append(append([]string{}, pre...), tc.steps...)...))
			var transcript []string
			opts := baseOptions()
			opts.TLS, opts.TLSConfig = TLSStartTLS, &tls.Config{RootCAs: pki.Pool}
			opts.Auth = &Auth{Username: testUser, Mechanism: "OAUTHBEARER",
				Token: func(context.Context) (string, string, error) { return testToken, "", nil }}
			opts.Transcript = func(l TranscriptLine) { transcript = append(transcript, l.String()) }
			res, err := probeFake(t, srv, opts, 10*time.Second)
			if sr := srv.Wait(t); sr.Err != nil {
				t.Fatalf("server: %v", sr.Err)
			}
			checkKeptScrubbed(t, res, err, transcript, []string{testToken, resp, SafeText(raw)})
		})
	}
}

// TestBearerTokenWithinDeadline: a token source that hangs is cut off by the
// probe's deadline, and the probe fails in phase auth with reason token.
func TestBearerTokenWithinDeadline(t *testing.T) {
	pki := validPKI(t)
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, "S: 220 mx.test", "C: EHLO probe.test", "S: 250-mx.test\n250 AUTH XOAUTH2", "DRAIN"))
	opts := baseOptions()
	opts.TLS, opts.TLSConfig, opts.Auth = TLSNone, nil, &Auth{Username: testUser, Mechanism: "XOAUTH2", AllowPlaintext: true,
		Token: func(ctx context.Context) (string, string, error) { <-ctx.Done(); return "", "", ctx.Err() }}
	start := time.Now()
	_, err := probeFake(t, srv, opts, 300*time.Millisecond)
	var perr *Error
	if !errors.As(err, &perr) || perr.Phase != PhaseAuth || perr.Reason != ReasonToken || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want auth/token wrapping the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the probe took %s past its 300ms deadline", d)
	}
	srv.Wait(t)
}

func TestValidateBearerAuth(t *testing.T) {
	token := func(context.Context) (string, string, error) { return "t", "", nil }
	password := func() (string, error) { return "p", nil }
	for _, tc := range []struct {
		name  string
		auth  Auth
		field string // "" when valid
	}{
		{"XOAUTH2 with a token", Auth{Username: "u", Mechanism: "XOAUTH2", Token: token}, ""},
		{"oauthbearer with a token", Auth{Username: "u", Mechanism: "oauthbearer", Token: token}, ""},
		{"XOAUTH2 without a token", Auth{Username: "u", Mechanism: "XOAUTH2"}, "Auth.Token"},
		{"XOAUTH2 with a password", Auth{Username: "u", Mechanism: "XOAUTH2", Token: token, Password: password}, "Auth.Password"},
		{"a token without a mechanism", Auth{Username: "u", Token: token}, "Auth.Password"},
		{"a token and a password without a mechanism", Auth{Username: "u", Token: token, Password: password}, "Auth.Token"},
		{"PLAIN with a token", Auth{Username: "u", Mechanism: "PLAIN", Password: password, Token: token}, "Auth.Token"},
		{"unknown mechanism", Auth{Username: "u", Mechanism: "GSSAPI", Token: token}, "Auth.Mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := baseOptions()
			o.TLS = TLSImplicit
			o.Auth = &tc.auth
			err := o.Validate()
			var ferr *FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.field != "" && (!errors.As(err, &ferr) || ferr.Field != tc.field):
				t.Fatalf("Validate = %v, want a refusal of %s", err, tc.field)
			}
		})
	}
}

// TestAuthAllAddressesOwnSecrets: each address's Session (ForAddr) registers
// the secrets it sends in a list of its own. A password whose quoted form
// differs leaves spare capacity in the prepared list, so two dialogs
// appending to a shared backing array would race (go test -race sees it
// in some runs: the two writes are not always unordered).
func TestAuthAllAddressesOwnSecrets(t *testing.T) {
	const password = `pa"ssword`
	plain := b64("\x00" + testUser + "\x00" + password)
	xoauth2 := b64("user=" + testUser + "\x01auth=Bearer " + testToken + "\x01\x01")
	for _, tc := range []struct {
		mech, sent string
	}{{"PLAIN", plain}, {"XOAUTH2", xoauth2}} {
		t.Run(tc.mech, func(t *testing.T) {
			steps := []string{"S: 220 mx.test", "C: EHLO probe.test", "S: 250-mx.test\n250 AUTH PLAIN XOAUTH2", "C: AUTH " + tc.mech + " " + tc.sent,
				"S: 235 2.7.0 ok " + tc.sent, "C: QUIT", "S: 221 bye"}
			var servers []*smtptest.Fake
			for try := 0; len(servers) < 2; try++ {
				first := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, steps...))
				second, err := smtptest.NewFakeOn(t, net.JoinHostPort("127.0.0.2", strconv.Itoa(int(first.Port))), smtptest.Script(nil, steps...))
				if err == nil {
					servers = []*smtptest.Fake{first, second}
				} else if try == 20 {
					t.Fatalf("no port free on 127.0.0.1 and 127.0.0.2: %v", err)
				}
			}
			resolver := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{"two.test. A": {"127.0.0.1", "127.0.0.2"}}}).Addr
			opts := baseOptions()
			opts.Resolver = resolver
			opts.Auth = &Auth{Username: testUser, Mechanism: tc.mech, AllowPlaintext: true}
			if tc.mech == "PLAIN" {
				opts.Auth.Password = func() (string, error) { return password, nil }
			} else {
				opts.Auth.Token = func(context.Context) (string, string, error) { return testToken, "", nil }
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Both addresses of the host, each its own Session, at once.
			s := NewSession(ctx, "two.test", servers[0].Port, opts, nil, "")
			addrs, perr := s.Prepare(true)
			if perr != nil || len(addrs) != 2 {
				t.Fatalf("Prepare: %v, %v", addrs, perr)
			}
			results := make([]*Result, len(addrs))
			var wg sync.WaitGroup
			for i, a := range addrs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					as := s.ForAddr(a, a.String())
					results[i] = as.Done(as.Run())
				}()
			}
			wg.Wait()
			for i, res := range results {
				if res.Err != nil {
					t.Errorf("address %d: %v", i, res.Err)
				}
				if last := res.Phases[len(res.Phases)-2].Reply; last == nil || strings.Contains(last.String(), tc.sent) || !strings.Contains(last.String(), redacted) {
					t.Errorf("address %d: the echo in the 235 is not scrubbed: %v", i, last)
				}
			}
			for _, s := range servers {
				if sr := s.Wait(t); sr.Err != nil {
					t.Errorf("server: %v", sr.Err)
				}
			}
		})
	}
}
