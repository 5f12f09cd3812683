package probe

import (
	"bufio"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

const (
	testClientID     = "probe-app"
	testClientSecret = "cl13nt/s3cr3t+&="
)

// tokenEndpoint is a client credentials token endpoint over TLS on
// 127.0.0.1: it checks the client's id and secret (Basic or form), the
// grant type, scope and extra parameters, and issues "token-N" valid for
// expiresIn. hold, when set, makes it wait until the request is cancelled.
type tokenEndpoint struct {
	srv       *httptest.Server
	caFile    string
	requests  atomic.Int32 // every request
	issued    atomic.Int32 // tokens issued
	expiresIn atomic.Int32
	hold      atomic.Bool
	echo      atomic.Bool   // refusals quote what the client sent
	stop      chan struct{} // closed at the end: releases held requests
	mu        sync.Mutex
	problems  []string // what the client sent wrongly
}

func startTokenEndpoint(t *testing.T) *tokenEndpoint {
	e := &tokenEndpoint{stop: make(chan struct{})}
	e.expiresIn.Store(3600)
	e.srv = httptest.NewTLSServer(http.HandlerFunc(e.serve))
	t.Cleanup(func() { close(e.stop); e.srv.Close() })
	e.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
	if err := os.WriteFile(e.caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *tokenEndpoint) problem(format string, args ...any) {
	e.mu.Lock()
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

func (e *tokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	// The body read, the server notices the client going away.
	if err := r.ParseForm(); err != nil {
		e.problem("form: %v", err)
	}
	if e.hold.Load() {
		select {
		case <-r.Context().Done():
		case <-e.stop:
		}
		return
	}
	id, secret, basic := r.BasicAuth()
	if basic { // form-urlencoded first (RFC 6749 section 2.3.1)
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.Method != http.MethodPost || r.URL.Path != "/tenant/oauth2/v2.0/token" {
		e.problem("%s %s", r.Method, r.URL.Path)
	}
	if g, s, p := r.PostForm.Get("grant_type"), r.PostForm.Get("scope"), r.PostForm.Get("resource"); g != "client_credentials" || s != "https://mail.test/.default" || p != "smtp" {
		e.problem("grant_type %q, scope %q, resource %q", g, s, p)
	}
	w.Header().Set("Content-Type", "application/json")
	if id != testClientID || secret != testClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		desc := "AADSTS7000215: Invalid client secret provided."
		if e.echo.Load() {
			desc += " Got " + r.Header.Get("Authorization") + " and " + r.PostForm.Encode() + " and " + secret
		}
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": desc})
		return
	}
	n := e.issued.Add(1)
	json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("token-%d", n), "token_type": "Bearer", "expires_in": e.expiresIn.Load()})
}

// oauth2Block is the module's auth section for this endpoint.
func (e *tokenEndpoint) oauth2Block(secretLine string) string {
	return fmt.Sprintf(`    auth:
      username: relay@probe.test
      mechanism: XOAUTH2
      allow_plaintext: true
      oauth2:
        client_id: %s
        %s
        token_url: %s/tenant/oauth2/v2.0/token
        scopes: [https://mail.test/.default]
        endpoint_params: {resource: smtp}
        tls_config: {ca_file: %s}
`, testClientID, secretLine, e.srv.URL, e.caFile)
}

// source builds the module's token source from config text.
func (e *tokenEndpoint) source(t *testing.T, secretLine string) *oauthSource {
	t.Helper()
	c, err := config.Parse([]byte("modules:\n  m:\n"+e.oauth2Block(secretLine)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newOAuthSource(c.Modules["m"].Auth.OAuth2)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *tokenEndpoint) checkRequests(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.problems {
		t.Errorf("token request: %s", p)
	}
}

func secretLine(s string) string { return "client_secret: '" + s + "'" }

func TestOAuthTokenCached(t *testing.T) {
	e := startTokenEndpoint(t)
	s := e.source(t, secretLine(testClientSecret))
	ctx := t.Context()
	const probes = 50
	var notes []string
	for range probes {
		token, note, err := s.Token(ctx)
		if err != nil || token != "token-1" {
			t.Fatalf("Token = %q, %v", token, err)
		}
		notes = append(notes, note)
	}
	if n := e.requests.Load(); n != 1 {
		t.Errorf("%d probes made %d token requests, want 1", probes, n)
	}
	if !strings.HasPrefix(notes[0], "bearer token fetched from "+e.srv.URL+"/tenant/oauth2/v2.0/token in ") || !strings.HasSuffix(notes[0], ", valid for 1h0m0s") ||
		!strings.HasPrefix(notes[1], "bearer token from the cache, valid for ") {
		t.Errorf("notes: %q, %q", notes[0], notes[1])
	}
	e.checkRequests(t)
	t.Logf("%d probes, %d token request", probes, e.requests.Load())
}

func TestOAuthTokenConcurrentProbesOneRequest(t *testing.T) {
	e := startTokenEndpoint(t)
	s := e.source(t, secretLine(testClientSecret))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if token, _, err := s.Token(t.Context()); err != nil || token != "token-1" {
				errs <- fmt.Errorf("Token = %q, %v", token, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.requests.Load(); n != 1 {
		t.Errorf("32 concurrent probes made %d token requests, want 1", n)
	}
}

// TestOAuthTokenRefreshed: a token is replaced 10s before it expires, not
// after (the clock is the source's, moved by the test).
func TestOAuthTokenRefreshed(t *testing.T) {
	e := startTokenEndpoint(t)
	e.expiresIn.Store(60)
	s := e.source(t, secretLine(testClientSecret))
	now := time.Now()
	s.now = func() time.Time { return now }
	for _, step := range []struct {
		after time.Duration // since the first request
		want  string
	}{{0, "token-1"}, {49 * time.Second, "token-1"}, {51 * time.Second, "token-2"}, {100 * time.Second, "token-2"}, {120 * time.Second, "token-3"}} {
		now = time.Now().Add(step.after)
		if token, _, err := s.Token(t.Context()); err != nil || token != step.want {
			t.Errorf("after %s: Token = %q, %v, want %s", step.after, token, err, step.want)
		}
	}
	if n := e.requests.Load(); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}
}

// TestOAuthTokenRefused: a wrong client secret fails with the endpoint's
// error, which never shows the secret, even when the endpoint echoes it
// (in the form, the Basic header or plain).
func TestOAuthTokenRefused(t *testing.T) {
	e := startTokenEndpoint(t)
	e.echo.Store(true)
	const wrong = "wr0ng/s3cr3t+&="
	s := e.source(t, secretLine(wrong))
	_, _, err := s.Token(t.Context())
	if err == nil {
		t.Fatal("no error")
	}
	text := err.Error()
	want := "token endpoint " + e.srv.URL + "/tenant/oauth2/v2.0/token answered 401 Unauthorized: invalid_client AADSTS7000215: Invalid client secret provided."
	if !strings.HasPrefix(text, want) {
		t.Errorf("error = %q, want it to start with %q", text, want)
	}
	for _, form := range []string{wrong, "wr0ng%2Fs3cr3t%2B%26%3D", base64.StdEncoding.EncodeToString([]byte(testClientID + ":wr0ng%2Fs3cr3t%2B%26%3D"))} {
		if strings.Contains(text, form) {
			t.Errorf("the error shows the client secret as %q: %s", form, text)
		}
	}
	if !strings.Contains(text, "<redacted>") {
		t.Errorf("the echo is not marked redacted: %s", text)
	}
	// x/oauth2 tries the secret in the Authorization header, then in the form.
	if n := e.requests.Load(); n != 2 {
		t.Errorf("%d token requests for one refused fetch, want 2 (header, then form)", n)
	}
	// The next probe asks again: a failure is not cached.
	if _, _, err := s.Token(t.Context()); err == nil || e.requests.Load() != 4 {
		t.Errorf("second probe: %v, %d requests", err, e.requests.Load())
	}
}

// TestOAuthTokenWithinDeadline: a token endpoint that never answers is cut
// off by the probe's deadline; probes waiting behind that request get its
// failure rather than asking again.
func TestOAuthTokenWithinDeadline(t *testing.T) {
	e := startTokenEndpoint(t)
	e.hold.Store(true)
	s := e.source(t, secretLine(testClientSecret))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = s.Token(ctx) })
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Token took %s past a 300ms deadline", d)
	}
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("probe %d: %v, want the deadline", i, err)
		}
	}
	if n := e.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1 (the others waited for it)", n)
	}
}

// TestOAuthNoRedirect: the client secret goes to the configured URL only.
func TestOAuthNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	c, err := config.Parse([]byte("modules:\n  m:\n    tls: implicit\n    auth: {username: u, mechanism: XOAUTH2, oauth2: {client_id: a, client_secret: s3cr3t-value, token_url: '"+
		redirector.URL+"/token'}}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newOAuthSource(c.Modules["m"].Auth.OAuth2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "answered 307 Temporary Redirect") {
		t.Errorf("err = %v, want the redirect as the endpoint's answer", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

// TestOAuthClientSecretFile: the file is checked at load and read at each
// request, so a rotated secret needs no reload.
func TestOAuthClientSecretFile(t *testing.T) {
	e := startTokenEndpoint(t)
	e.expiresIn.Store(5) // shorter than tokenRefreshEarly: every probe asks
	dir := t.TempDir()
	file := filepath.Join(dir, "client.secret")
	if err := os.WriteFile(file, []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := e.source(t, "client_secret_file: "+file)
	if _, _, err := s.Token(t.Context()); err == nil {
		t.Fatal("the old secret was accepted")
	}
	if err := os.WriteFile(file, []byte(testClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if token, _, err := s.Token(t.Context()); err != nil || token != "token-1" {
		t.Errorf("after rotation: %q, %v", token, err)
	}
	c, err := config.Parse([]byte("modules:\n  m:\n"+e.oauth2Block("client_secret_file: "+filepath.Join(dir, "missing"))), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(c); err == nil || err.Error() != `modules.m.auth.oauth2.client_secret_file: cannot read `+filepath.Join(dir, "missing")+": no such file or directory" {
		t.Errorf("Build with a missing client_secret_file: %v", err)
	}
}

func TestBearerTokenFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	token, err := tokenFunc(&config.AuthConfig{BearerTokenFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := token(t.Context()); err == nil || !strings.Contains(err.Error(), "bearer_token_file: cannot read ") {
		t.Errorf("missing file: %v", err)
	}
	for _, want := range []string{"first-token", "rotated-token"} {
		if err := os.WriteFile(file, []byte(want+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, note, err := token(t.Context()); err != nil || got != want || note != "bearer token read from "+file {
			t.Errorf("Token = %q, %q, %v, want %q", got, note, err, want)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoToken, _ := tokenFunc(&config.AuthConfig{BearerTokenFile: fifo})
	if _, _, err := fifoToken(t.Context()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: %v", err)
	}
}

// TestOAuthProbe runs a plan with XOAUTH2 against a small SMTP server:
// the token from the endpoint is sent once per dialog, fetched once for
// several probes; with the endpoint refusing, the probe fails in phase auth
// with reason token and AUTH is never sent.
func TestOAuthProbe(t *testing.T) {
	e := startTokenEndpoint(t)
	smtpAddr, authLines := startXOAUTH2Server(t)
	for _, tc := range []struct {
		name, secret string
		probes       int
	}{{"accepted", testClientSecret, 3}, {"endpoint refuses", "wrong-secret", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.requests.Load()
			set := build(t, "modules:\n  m:\n    helo_name: probe.test\n"+e.oauth2Block(secretLine(tc.secret)), t.TempDir())
			target := mustTarget(t, set.Plans["m"], smtpAddr)
			for i := range tc.probes {
				var tr []string
				o, err := Run(t.Context(), target, Hooks{Transcript: func(l smtp.TranscriptLine) { tr = append(tr, l.String()) }})
				if err != nil {
					t.Fatal(err)
				}
				transcript := strings.Join(tr, "\n")
				res := o.Hosts[0].Result
				if tc.secret == testClientSecret {
					if res.Err != nil {
						t.Fatalf("probe %d: %v\n%s", i, res.Err, transcript)
					}
					if got := <-authLines; got != "AUTH XOAUTH2 "+base64.StdEncoding.EncodeToString([]byte("user=relay@probe.test\x01auth=Bearer token-1\x01\x01")) {
						t.Errorf("probe %d sent %q", i, got)
					}
				} else {
					var perr *smtp.Error
					if !errors.As(res.Err, &perr) || perr.Phase != smtp.PhaseAuth || perr.Reason != smtp.ReasonToken || !strings.Contains(perr.Error(), "invalid_client") {
						t.Fatalf("err = %v, want auth/token with the endpoint's error", res.Err)
					}
					select {
					case l := <-authLines:
						t.Errorf("AUTH was sent: %q", l)
					default:
					}
				}
				for _, secret := range []string{testClientSecret, "wrong-secret", "token-1"} {
					if strings.Contains(transcript, secret) {
						t.Errorf("the transcript shows %q:\n%s", secret, transcript)
					}
				}
			}
			if tc.secret == testClientSecret && e.requests.Load()-before != 1 {
				t.Errorf("%d probes made %d token requests, want 1", tc.probes, e.requests.Load()-before)
			}
		})
	}
}

// startXOAUTH2Server serves SMTP on 127.0.0.1 offering AUTH XOAUTH2 and
// accepting any; every AUTH line is sent on the channel.
func startXOAUTH2Server(t *testing.T) (string, <-chan string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				fmt.Fprint(c, "220 mx.probe.test ESMTP\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					l = strings.TrimRight(l, "\r\n")
					switch {
					case strings.HasPrefix(l, "EHLO"):
						fmt.Fprint(c, "250-mx.probe.test\r\n250 AUTH XOAUTH2\r\n")
					case strings.HasPrefix(l, "AUTH"):
						lines <- l
						fmt.Fprint(c, "235 2.7.0 Authentication successful\r\n")
					case l == "QUIT":
						fmt.Fprint(c, "221 2.0.0 Bye\r\n")
						return
					default:
						fmt.Fprint(c, "500 5.5.2 unknown\r\n")
					}
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), lines
}

// TestOAuthJWTBearer: the jwt-bearer grant (RFC 7523) as Google's service
// accounts use it: an RS256 assertion with iss (client_id), sub (from
// claims: the mailbox to act for), aud (the token URL), scope, iat and exp,
// signed with the key from client_certificate_key_file; the token cached
// like the client credentials grant's.
func TestOAuthJWTBearer(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.pem")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	problems := make(chan string, 16)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_ = r.ParseForm()
		if g := r.PostForm.Get("grant_type"); g != config.GrantJWTBearer {
			problems <- "grant_type " + g
		}
		claims, err := verifyRS256(&key.PublicKey, r.PostForm.Get("assertion"), "sa-key-1")
		if err != nil {
			problems <- err.Error()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		now := float64(time.Now().Unix())
		if claims["iss"] != "probe@project.iam.gserviceaccount.com" || claims["sub"] != "relay@example.org" || claims["aud"] != srv.URL+"/token" ||
			claims["scope"] != "https://mail.google.com/" || claims["iat"].(float64) > now+1 || claims["exp"].(float64) <= now {
			problems <- fmt.Sprintf("claims %v", claims)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "ya29.google-like-token", "token_type": "Bearer", "expires_in": 3599})
	}))
	defer srv.Close()
	c, err := config.Parse([]byte(`modules:
  gmail:
    tls: starttls
    auth:
      username: relay@example.org
      mechanism: XOAUTH2
      oauth2:
        client_id: probe@project.iam.gserviceaccount.com
        grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer
        client_certificate_key_file: sa.pem
        client_certificate_key_id: sa-key-1
        token_url: `+srv.URL+`/token
        scopes: [https://mail.google.com/]
        claims: {sub: relay@example.org}
`), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newOAuthSource(c.Modules["gmail"].Auth.OAuth2)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if token, _, err := s.Token(t.Context()); err != nil || token != "ya29.google-like-token" {
			t.Fatalf("Token = %q, %v", token, err)
		}
	}
	close(problems)
	for p := range problems {
		t.Errorf("token request: %s", p)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("3 probes made %d token requests, want 1", n)
	}

	// A file that holds no RSA key is refused at load.
	if err := os.WriteFile(keyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newOAuthSource(c.Modules["gmail"].Auth.OAuth2); err == nil || !strings.HasPrefix(err.Error(), "client_certificate_key_file: not an RSA private key in PEM") {
		t.Errorf("a bad key file: %v", err)
	}
}

// verifyRS256 checks a JWT's RS256 signature and kid, and returns its claims.
func verifyRS256(pub *rsa.PublicKey, token, kid string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("assertion %q is not a JWT", token)
	}
	var header map[string]any
	var claims map[string]any
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, err
		}
	}
	if header["alg"] != "RS256" || header["kid"] != kid {
		return nil, fmt.Errorf("header %v", header)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return claims, nil
}

// TestOAuthJWTBearerWithinDeadline: the JWT grant's request does not take
// the probe's context; the client's timeout bounds it instead.
func TestOAuthJWTBearerWithinDeadline(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	s, err := newOAuthSource(&promconfig.OAuth2{ClientID: "sa", GrantType: config.GrantJWTBearer, TokenURL: srv.URL + "/token",
		ClientCertificateKey: promconfig.Secret(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := s.Token(ctx); err == nil || !strings.Contains(err.Error(), "Client.Timeout exceeded") {
		t.Errorf("err = %v, want the client's timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Token took %s past a 300ms deadline", d)
	}
}

// BenchmarkOAuthTokenCached is what a probe pays for its token while one is
// cached: no request, a channel send and receive and a time check.
func BenchmarkOAuthTokenCached(b *testing.B) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"cached-token","token_type":"Bearer","expires_in":3600}`)
	}))
	defer srv.Close()
	s, err := newOAuthSource(&promconfig.OAuth2{ClientID: "a", ClientSecret: "s3cr3t", TokenURL: srv.URL + "/token"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if token, _, err := s.Token(ctx); err != nil || token != "cached-token" {
				b.Errorf("Token = %q, %v", token, err)
				return
			}
		}
	})
	if n := requests.Load(); n != 1 {
		b.Errorf("%d token requests, want 1", n)
	}
}
