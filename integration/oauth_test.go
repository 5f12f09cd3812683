package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

const oauthUser = "relay@probe.test"

// jwtClient is a client the test's token endpoint knows.
type jwtClient struct {
	secret   string
	key      []byte        // signs its tokens (HS256)
	lifetime time.Duration // expires_in
	exp      time.Duration // the JWT's exp, from now (default: lifetime)
}

// jwtIssuer is the token endpoint of the OAuth tests: the client
// credentials grant over TLS on 127.0.0.1, issuing HS256 JWTs (sub, iat,
// exp, iss) for the clients it knows, and counting the requests of each.
type jwtIssuer struct {
	srv     *httptest.Server
	caFile  string
	clients map[string]jwtClient

	mu       sync.Mutex
	requests map[string]int // by client_id
	issued   []string       // every token issued
}

func startJWTIssuer(t *testing.T, clients map[string]jwtClient) *jwtIssuer {
	is := &jwtIssuer{clients: clients, requests: map[string]int{}}
	is.srv = httptest.NewTLSServer(http.HandlerFunc(is.serve))
	t.Cleanup(is.srv.Close)
	is.caFile = filepath.Join(t.TempDir(), "issuer-ca.pem")
	write(t, is.caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})))
	return is
}

func (is *jwtIssuer) tokenURL() string { return is.srv.URL + "/tenant/oauth2/v2.0/token" }

func (is *jwtIssuer) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, basic := r.BasicAuth()
	if basic { // form-urlencoded first (RFC 6749 section 2.3.1)
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.requests[id]++
	w.Header().Set("Content-Type", "application/json")
	c, ok := is.clients[id]
	if !ok || secret != c.secret || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "smtp.send" {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
		return
	}
	exp := c.exp
	if exp == 0 {
		exp = c.lifetime
	}
	now := time.Now()
	// iat a few seconds back, as issuers write it to allow for clocks
	// that differ (Azure AD backdates nbf by minutes): a validator whose
	// idea of "now" lags the issuer's by a moment must not see a token
	// issued in the future. One full test run in six saw Dovecot refuse a
	// fresh token ("invalid_token") with iat = now.
	token := signHS256(c.key, map[string]any{"sub": oauthUser, "iss": is.srv.URL, "iat": now.Add(-5 * time.Second).Unix(), "exp": now.Add(exp).Unix()})
	is.issued = append(is.issued, token)
	json.NewEncoder(w).Encode(map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": int(c.lifetime.Seconds())})
}

func (is *jwtIssuer) count(client string) int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.requests[client]
}

func (is *jwtIssuer) tokens() []string {
	is.mu.Lock()
	defer is.mu.Unlock()
	return append([]string{}, is.issued...)
}

// signHS256 makes a JWT signed with key.
func signHS256(key []byte, claims map[string]any) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	body, _ := json.Marshal(claims)
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestOAuthSubmission: the probe's XOAUTH2 and OAUTHBEARER logins against
// Postfix's submission service, whose Dovecot validates the JWTs itself
// with the key the token endpoint signs with; a token endpoint that refuses
// the client fails the probe with reason token, a token Dovecot refuses
// with reply_5xx; no secret shows anywhere.
func TestOAuthSubmission(t *testing.T) {
	key := []byte("smtp-exporter-integration-hs256-key!")
	otherKey := []byte("not-the-key-dovecot-validates-with")
	p := startPostfixOAuth(t, key)
	is := startJWTIssuer(t, map[string]jwtClient{
		"app":    {secret: "app-cl13nt-s3cr3t", key: key, lifetime: time.Hour},
		"app2":   {secret: "app2-cl13nt-s3cr3t", key: key, lifetime: time.Hour},
		"short":  {secret: "short-cl13nt-s3cr3t", key: key, lifetime: 11 * time.Second},
		"forged": {secret: "forged-cl13nt-s3cr3t", key: otherKey, lifetime: time.Hour},
		"stale":  {secret: "stale-cl13nt-s3cr3t", key: key, lifetime: time.Hour, exp: -time.Minute},
	})
	dir := t.TempDir()
	secrets := []string{"app-cl13nt-s3cr3t", "app2-cl13nt-s3cr3t", "short-cl13nt-s3cr3t", "forged-cl13nt-s3cr3t", "stale-cl13nt-s3cr3t", "wr0ng-cl13nt-s3cr3t"}
	write(t, filepath.Join(dir, "app.secret"), "app-cl13nt-s3cr3t\n")
	bearerFile := filepath.Join(dir, "bearer.token")
	fileToken := signHS256(key, map[string]any{"sub": oauthUser, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	write(t, bearerFile, fileToken+"\n")
	// Dovecot delays every login from an address after a failed one (its
	// auth penalty: 2s, doubled per failure, at most 15s; a success resets
	// it), so the modules that fail at the server come last and wait 30s.
	module := func(name, mech, credential string) string {
		timeout := "10s"
		if strings.HasPrefix(name, "forged") || name == "stale" {
			timeout = "30s"
		}
		return fmt.Sprintf(`  %s:
    timeout: %s
    helo_name: probe.test
    tls: starttls
    tls_config: {ca_file: %s, server_name: mx.probe.test}
    auth:
      username: %s
      mechanism: %s
      targets: [127.0.0.1]
%s`, name, timeout, p.caFile, oauthUser, mech, credential)
	}
	oauth2 := func(client, secretLine string) string {
		return fmt.Sprintf(`      oauth2:
        client_id: %s
        %s
        token_url: %s
        scopes: [smtp.send]
        tls_config: {ca_file: %s}
`, client, secretLine, is.tokenURL(), is.caFile)
	}
	conf := filepath.Join(dir, "oauth.yml")
	write(t, conf, "modules:\n"+
		module("xoauth2", "XOAUTH2", oauth2("app", "client_secret_file: app.secret"))+
		module("oauthbearer", "OAUTHBEARER", oauth2("app2", "client_secret: app2-cl13nt-s3cr3t"))+
		module("short", "XOAUTH2", oauth2("short", "client_secret: short-cl13nt-s3cr3t"))+
		module("wrong_secret", "XOAUTH2", oauth2("app", "client_secret: wr0ng-cl13nt-s3cr3t"))+
		module("forged_xoauth2", "XOAUTH2", oauth2("forged", "client_secret: forged-cl13nt-s3cr3t"))+
		module("forged_oauthbearer", "OAUTHBEARER", oauth2("forged", "client_secret: forged-cl13nt-s3cr3t"))+
		module("stale", "XOAUTH2", oauth2("stale", "client_secret: stale-cl13nt-s3cr3t"))+
		module("bearer_file", "OAUTHBEARER", "      bearer_token_file: "+bearerFile+"\n"))
	e := testenv.StartExporter(t, binary, "--config.file="+conf, "--log.level=debug")

	var outputs sync.Map // name -> text: every output checked for secrets at the end
	probe := func(t *testing.T, module string) string {
		t.Helper()
		code, body := e.Get(t, "/probe?"+url.Values{"target": {p.submission}, "module": {module}, "debug": {"true"}}.Encode())
		if code != 200 {
			t.Fatalf("/probe: %d %s", code, body)
		}
		outputs.Store(fmt.Sprintf("debug output of %s %d", module, time.Now().UnixNano()), body)
		return body
	}
	must := func(t *testing.T, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("the answer lacks %q:\n%s\nmaillog:\n%s", w, body, grep(p.maillog(), "sasl"))
			}
		}
	}

	t.Run("XOAUTH2 accepted, one token for many probes", func(t *testing.T) {
		const probes = 5
		for i := range probes {
			body := probe(t, "xoauth2")
			must(t, body, "probe_success 1\n", `probe_smtp_reply_code{phase="auth"} 235`, `probe_smtp_extension_info{extension="AUTH"} 1`,
				"C: AUTH XOAUTH2 <redacted>", "S: 235 2.7.0 Authentication successful")
			if i > 0 {
				must(t, body, "bearer token from the cache, valid for ")
			}
		}
		if n := is.count("app"); n != 1 {
			t.Errorf("%d probes made %d token requests, want 1", probes, n)
		}
		t.Logf("%d XOAUTH2 probes through the exporter: %d token request", probes, is.count("app"))
	})

	t.Run("OAUTHBEARER accepted", func(t *testing.T) {
		for range 3 {
			must(t, probe(t, "oauthbearer"), "probe_success 1\n", "C: AUTH OAUTHBEARER <redacted>", "S: 235 2.7.0 Authentication successful")
		}
		if n := is.count("app2"); n != 1 {
			t.Errorf("3 probes made %d token requests, want 1", n)
		}
		code, out := runProbeCLI(t, p.submission, "--module=oauthbearer", "--config.file="+conf)
		outputs.Store("probe command", out)
		if code != 0 || !strings.Contains(out, "bearer token fetched from "+is.tokenURL()) || !strings.Contains(out, "Probe succeeded") {
			t.Errorf("probe command: exit %d\n%s", code, out)
		}
	})

	t.Run("expired token refreshed", func(t *testing.T) {
		// expires_in 11s: cached for 1s (refreshed 10s before expiry).
		must(t, probe(t, "short"), "probe_success 1\n")
		must(t, probe(t, "short"), "probe_success 1\n")
		first := is.count("short")
		time.Sleep(1500 * time.Millisecond)
		must(t, probe(t, "short"), "probe_success 1\n", "bearer token fetched from ")
		if second := is.count("short"); first > 2 || second != first+1 {
			t.Errorf("token requests: %d for two probes, %d after the expiry; want a new request after the expiry only", first, second)
		}
	})

	t.Run("bearer_token_file", func(t *testing.T) {
		must(t, probe(t, "bearer_file"), "probe_success 1\n", "bearer token read from "+bearerFile, "S: 235 ")
	})

	t.Run("wrong client secret: reason token, no AUTH sent", func(t *testing.T) {
		body := probe(t, "wrong_secret")
		must(t, body, `probe_smtp_failure_info{phase="auth",reason="token"} 1`, "probe_success 0\n", "probe_smtp_last_reply_code 0\n",
			`probe_smtp_phase_duration_seconds{phase="auth"} `, `probe_smtp_reply_code{phase="quit"} 221`,
			"answered 401 Unauthorized: invalid_client AADSTS7000215: Invalid client secret provided.", "C: QUIT")
		for _, absent := range []string{"C: AUTH", `probe_smtp_reply_code{phase="auth"}`} {
			if strings.Contains(body, absent) {
				t.Errorf("the answer has %q:\n%s", absent, body)
			}
		}
		code, out := runProbeCLI(t, p.submission, "--module=wrong_secret", "--config.file="+conf)
		outputs.Store("probe command, wrong secret", out)
		if code != 2 || !strings.Contains(out, "failed in phase auth (token)") {
			t.Errorf("probe command: exit %d, want 2 and the token failure\n%s", code, out)
		}
	})

	for _, tc := range []struct{ module, answer string }{
		{"forged_xoauth2", "C: \n"}, // XOAUTH2 (Google's form: status 401): the error challenge answered with an empty line
		{"forged_oauthbearer", "C: AQ==\n"},
	} {
		t.Run("token signed with another key refused: "+tc.module, func(t *testing.T) {
			body := probe(t, tc.module)
			must(t, body, `probe_smtp_failure_info{phase="auth",reason="reply_5xx"} 1`, "probe_smtp_last_reply_code 535",
				"the server refused the token: {", `"status":"`, tc.answer)
		})
	}

	t.Run("expired JWT refused by Dovecot", func(t *testing.T) {
		must(t, probe(t, "stale"), `probe_smtp_failure_info{phase="auth",reason="reply_5xx"} 1`, "probe_smtp_last_reply_code 535")
	})

	t.Run("no secret anywhere", func(t *testing.T) {
		_, cfg := e.Get(t, "/config")
		_, metrics := e.Get(t, "/metrics")
		outputs.Store("/config", cfg)
		outputs.Store("/metrics", metrics)
		outputs.Store("exporter log", e.Log())
		forbidden := append([]string{}, secrets...)
		for _, tok := range append(is.tokens(), fileToken) {
			raw := []string{"user=" + oauthUser + "\x01auth=Bearer " + tok + "\x01\x01", "n,a=" + oauthUser + ",\x01auth=Bearer " + tok + "\x01\x01"}
			forbidden = append(forbidden, tok, b64(raw[0]), b64(raw[1]), strings.ReplaceAll(raw[0], "\x01", `\x01`), strings.ReplaceAll(raw[1], "\x01", `\x01`))
		}
		if len(is.tokens()) < 5 {
			t.Errorf("only %d tokens issued", len(is.tokens()))
		}
		n := 0
		outputs.Range(func(name, text any) bool {
			n++
			for _, s := range forbidden {
				if strings.Contains(text.(string), s) {
					t.Errorf("%s contains the secret %q", name, s)
				}
			}
			return true
		})
		if !strings.Contains(cfg, "client_secret: <secret>") || !strings.Contains(cfg, "client_secret_file: "+filepath.Join(dir, "app.secret")) {
			t.Errorf("/config:\n%s", cfg)
		}
		if !strings.Contains(e.Log(), "reason=token") {
			t.Errorf("the exporter did not log the token failure at debug level:\n%s", e.Log())
		}
		t.Logf("%d outputs checked for %d secrets", n, len(forbidden))
	})
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(p.dir, "dovecot", "dovecot.log"))
		t.Logf("dovecot log:\n%s", b)
	}
}
