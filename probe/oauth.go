package probe

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	promconfig "github.com/prometheus/common/config"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// MaxBearerTokenFileSize bounds a bearer_token_file.
const MaxBearerTokenFileSize = 16 << 10

// tokenRefreshEarly is how long before its expiry a cached token is
// replaced (oauth2.ReuseTokenSource's rule): the probe uses the token right
// away, so this covers the clocks' skew and the SMTP server's check.
const tokenRefreshEarly = 10 * time.Second

// maxTokenErrorText bounds the token endpoint's words quoted in an error.
const maxTokenErrorText = 300

// tokenFunc returns the smtp.Auth Token of an auth section with oauth2 or
// bearer_token_file, or nil for one with a password.
func tokenFunc(a *config.AuthConfig) (func(context.Context) (string, string, error), error) {
	switch {
	case a.OAuth2 != nil:
		s, err := newOAuthSource(a.OAuth2)
		if err != nil {
			return nil, config.AtKey(err, "oauth2")
		}
		return s.Token, nil
	case a.BearerTokenFile != "":
		// Not checked at load: the file is written by something else,
		// which may start after the exporter; a probe without it fails
		// with reason token.
		path := a.BearerTokenFile
		return func(context.Context) (string, string, error) {
			token, err := readSecretFile(path, MaxBearerTokenFileSize)
			if err != nil {
				err = fmt.Errorf("bearer_token_file: %w", err)
			}
			return token, "bearer token read from " + path, err
		}, nil
	}
	return nil, nil
}

// oauthSource hands out a module's OAuth 2.0 access token, got from its
// token endpoint by the client credentials grant (RFC 6749 section 4.4,
// golang.org/x/oauth2's clientcredentials) or the JWT bearer grant (RFC 7523,
// prometheus/common's JwtGrantTypeConfig: an assertion signed with the
// client's RSA key, as Google's service accounts use). The token is cached and reused until
// tokenRefreshEarly before it expires, so the endpoint is asked once per
// token lifetime, not once per probe; a token without expires_in is kept
// until the configuration is reloaded. One request is made at a time, with
// the context of the probe that needs it, so it ends within that probe's
// deadline; probes that waited for a request that failed get its error
// instead of asking again at once. The endpoint is dialled only as
// configured: no redirects are followed, no proxy is used unless
// configured. Safe for concurrent use.
type oauthSource struct {
	tokenURL string
	clientID string
	// credential is the client secret (client credentials) or the private
	// key (JWT bearer): inline, or the file read at each request.
	credential func() (string, error)
	// grant is the grant to ask with, given the credential as it is now.
	grant  func(credential string) tokenGrant
	client *http.Client
	now    func() time.Time

	sem      chan struct{} // held while the cache is read or a request made
	tok      *oauth2.Token // guarded by sem
	lastErr  error         // guarded by sem: the last request's failure
	failures atomic.Uint64 // requests that failed so far
}

// tokenGrant is a configured grant: clientcredentials.Config or
// promconfig.JwtGrantTypeConfig. Each TokenSource asks the endpoint once,
// with the context's HTTP client.
type tokenGrant interface {
	TokenSource(ctx context.Context) oauth2.TokenSource
}

// MaxPrivateKeyFileSize bounds a client_certificate_key_file (a PEM key).
const MaxPrivateKeyFileSize = 64 << 10

func newOAuthSource(o *promconfig.OAuth2) (*oauthSource, error) {
	client, err := oauthHTTPClient(o)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	for k, v := range o.EndpointParams {
		params.Set(k, v)
	}
	s := &oauthSource{tokenURL: o.TokenURL, clientID: o.ClientID, client: client, now: time.Now, sem: make(chan struct{}, 1)}
	if o.GrantType == config.GrantJWTBearer {
		if s.credential, err = privateKeyFunc(o); err != nil {
			return nil, err
		}
		alg := map[string]*jwt.SigningMethodRSA{"RS384": jwt.SigningMethodRS384, "RS512": jwt.SigningMethodRS512}[o.SignatureAlgorithm]
		if alg == nil {
			alg = jwt.SigningMethodRS256
		}
		// As Prometheus does it: iss defaults to client_id, sub is
		// client_id unless claims say otherwise.
		s.grant = func(key string) tokenGrant {
			return &promconfig.JwtGrantTypeConfig{Iss: cmp.Or(o.Iss, o.ClientID), PrivateKey: []byte(key), PrivateKeyID: o.ClientCertificateKeyID,
				SigningAlgorithm: alg, Subject: o.ClientID, Scopes: o.Scopes, TokenURL: o.TokenURL, EndpointParams: params,
				Audience: o.Audience, PrivateClaims: o.Claims}
		}
		return s, nil
	}
	if s.credential, err = secretFunc("client_secret_file", o.ClientSecret, o.ClientSecretFile); err != nil {
		return nil, err
	}
	// One Config for the source's life: it remembers how the endpoint
	// takes the secret (Authorization header or form).
	cc := &clientcredentials.Config{ClientID: o.ClientID, TokenURL: o.TokenURL, Scopes: o.Scopes, EndpointParams: params}
	s.grant = func(secret string) tokenGrant {
		cc.ClientSecret = secret
		return cc
	}
	return s, nil
}

// privateKeyFunc returns the jwt-bearer grant's RSA private key (PEM),
// inline or read from file at every call; it is checked once now.
func privateKeyFunc(o *promconfig.OAuth2) (func() (string, error), error) {
	read := func() (string, error) { return string(o.ClientCertificateKey), nil }
	key := "client_certificate_key"
	if file := o.ClientCertificateKeyFile; file != "" {
		key += "_file"
		read = func() (string, error) {
			b, err := readRegularFile(file, MaxPrivateKeyFileSize)
			if err != nil {
				err = fmt.Errorf("client_certificate_key_file: %w", err)
			}
			return string(b), err
		}
	}
	pem, err := read()
	if err != nil {
		return nil, err
	}
	if _, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(pem)); err != nil {
		return nil, fmt.Errorf("%s: not an RSA private key in PEM: %w", key, err)
	}
	return read, nil
}

// oauthHTTPClient is the client that asks the token endpoint: the oauth2
// block's tls_config and proxy settings, no redirects (the client secret
// goes to the configured URL only), no idle connections kept (a request is
// made once per token lifetime).
func oauthHTTPClient(o *promconfig.OAuth2) (*http.Client, error) {
	tlsConfig, err := promconfig.NewTLSConfig(&o.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("tls_config: %w", err)
	}
	transport := &http.Transport{
		TLSClientConfig:     tlsConfig,
		Proxy:               o.Proxy(),
		ProxyConnectHeader:  o.GetProxyConnectHeader(),
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}

// Token returns the access token and a note for the transcript saying
// whether it came from the cache or the endpoint, as smtp.Auth.Token.
func (s *oauthSource) Token(ctx context.Context) (string, string, error) {
	failed := s.failures.Load()
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return "", "", fmt.Errorf("waiting for another probe's request to token endpoint %s: %w", s.tokenURL, ctx.Err())
	}
	defer func() { <-s.sem }()
	now := s.now()
	if t := s.tok; t != nil && (t.Expiry.IsZero() || now.Add(tokenRefreshEarly).Before(t.Expiry)) {
		return t.AccessToken, "bearer token from the cache" + validity(t, now), nil
	}
	if s.failures.Load() != failed {
		return "", "", fmt.Errorf("%w (the request this probe waited for)", s.lastErr)
	}
	start := time.Now()
	t, err := s.fetch(ctx)
	if err != nil {
		s.lastErr = err
		s.failures.Add(1)
		return "", "", err
	}
	s.tok = t
	return t.AccessToken, fmt.Sprintf("bearer token fetched from %s in %s%s", s.tokenURL,
		time.Since(start).Round(time.Millisecond), validity(t, s.now())), nil
}

func validity(t *oauth2.Token, now time.Time) string {
	if t.Expiry.IsZero() {
		return " (no expiry given: kept until the configuration is reloaded)"
	}
	return fmt.Sprintf(", valid for %s", t.Expiry.Sub(now).Round(time.Second))
}

// fetch asks the token endpoint, with the credential as it is now, within
// ctx's deadline (the client's timeout too: the JWT grant's request does not
// take the context).
func (s *oauthSource) fetch(ctx context.Context) (*oauth2.Token, error) {
	credential, err := s.credential()
	if err != nil {
		return nil, err
	}
	client := s.client
	if deadline, ok := ctx.Deadline(); ok {
		c := *s.client
		c.Timeout = max(time.Until(deadline), time.Nanosecond) // 0 would be none
		client = &c
	}
	asked := s.now()
	t, err := s.grant(credential).TokenSource(context.WithValue(ctx, oauth2.HTTPClient, client)).Token()
	if err != nil {
		return nil, s.explain(err, credential)
	}
	if !t.Expiry.IsZero() {
		// x/oauth2 counts expires_in from the answer; count it from the
		// question instead, on the source's clock.
		t.Expiry = asked.Add(time.Until(t.Expiry))
	}
	return t, nil
}

// explain turns the endpoint's failure into an error that says what the
// endpoint answered, bounded and with the client secret (in every form the
// request carried it) scrubbed; it still matches what err matched.
func (s *oauthSource) explain(err error, secret string) error {
	var text string
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := "an error"
		if re.Response != nil {
			status = re.Response.Status
		}
		detail := strings.TrimSpace(strings.Join([]string{re.ErrorCode, re.ErrorDescription}, " "))
		if detail == "" {
			detail = strings.Join(strings.Fields(string(re.Body)), " ")
		}
		text = fmt.Sprintf("token endpoint %s answered %s", s.tokenURL, status)
		if detail != "" {
			text += ": " + detail
		}
	} else {
		text = fmt.Sprintf("token endpoint %s: %v", s.tokenURL, err)
	}
	if secret != "" {
		id := url.QueryEscape(s.clientID)
		for _, form := range []string{
			base64.StdEncoding.EncodeToString([]byte(id + ":" + url.QueryEscape(secret))), // Authorization: Basic
			url.QueryEscape(secret), // client_secret= in the form
			secret,
		} {
			text = strings.ReplaceAll(text, form, "<redacted>")
		}
	}
	if len(text) > maxTokenErrorText {
		text = text[:maxTokenErrorText] + "..."
	}
	return &tokenError{text: smtp.SafeText(text), err: err}
}

// tokenError is a token request's failure as explain words it.
type tokenError struct {
	text string
	err  error
}

func (e *tokenError) Error() string { return e.text }
func (e *tokenError) Unwrap() error { return e.err }
