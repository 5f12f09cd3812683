package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	promconfig "github.com/prometheus/common/config"
)

// The OAuth 2.0 grant types an oauth2 block may name: the client
// credentials grant (RFC 6749 section 4.4, the default), and the JWT bearer
// grant (RFC 7523 section 2.1, "two-legged OAuth" with an RSA-signed
// assertion, as Google's service accounts use).
const (
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// endpointParamsReserved are the token request's parameters that the
// exporter sets itself; endpoint_params may not override them.
var endpointParamsReserved = []string{"grant_type", "client_id", "client_secret", "scope", "assertion"}

// validateCredentials checks which credential the auth section holds and
// that it suits the mechanism: a password (password or password_file) for
// PLAIN, LOGIN and CRAM-MD5, a bearer token (oauth2 or bearer_token_file)
// for XOAUTH2 and OAUTHBEARER; exactly one of them.
func (a *AuthConfig) validateCredentials() error {
	password := a.Password != "" || a.PasswordFile != ""
	tokenKey := ""
	switch {
	case a.OAuth2 != nil && a.BearerTokenFile != "":
		return at("bearer_token_file", "is set together with oauth2: keep one of them")
	case a.OAuth2 != nil:
		tokenKey = "oauth2"
	case a.BearerTokenFile != "":
		tokenKey = "bearer_token_file"
	}
	if password && tokenKey != "" {
		return at(tokenKey, "is set together with %s: a module sends one credential", passwordKey(a))
	}
	if a.Password != "" && a.PasswordFile != "" {
		return at("password_file", "is set together with password: keep one of them")
	}
	switch mech := strings.ToUpper(a.Mechanism); mech {
	case "", "PLAIN", "LOGIN", "CRAM-MD5":
		if tokenKey != "" {
			return at(tokenKey, "needs mechanism XOAUTH2 or OAUTHBEARER (mechanism is %s)", cmp.Or(a.Mechanism, "not set"))
		}
		if !password {
			return keyErrorf(nil, "needs password_file (or password)")
		}
	case "XOAUTH2", "OAUTHBEARER":
		if password {
			return at(passwordKey(a), "is not used by mechanism %s, which takes a bearer token from oauth2 or bearer_token_file", mech)
		}
		if tokenKey == "" {
			return at("mechanism", "%s needs oauth2 (a token endpoint) or bearer_token_file", mech)
		}
	default:
		return at("mechanism", "%q is not PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER", a.Mechanism)
	}
	if a.OAuth2 != nil {
		if err := validateOAuth2(a.OAuth2); err != nil {
			return AtKey(err, "oauth2")
		}
	}
	return nil
}

func passwordKey(a *AuthConfig) string {
	if a.Password != "" {
		return "password"
	}
	return "password_file"
}

// validateOAuth2 checks an oauth2 block (prometheus/common's) for the
// client credentials or the JWT bearer grant, and refuses what the exporter
// does not do.
func validateOAuth2(o *promconfig.OAuth2) error {
	if o.ClientID == "" {
		return errors.New("client_id is required")
	}
	if err := checkTokenURL(o.TokenURL); err != nil {
		return err
	}
	if o.ClientSecretRef != "" || o.ClientCertificateKeyRef != "" {
		return errors.New("client_secret_ref and client_certificate_key_ref are not supported (there is no secret manager): use client_secret_file or client_certificate_key_file")
	}
	switch o.GrantType {
	case "", GrantClientCredentials:
		switch {
		case o.ClientSecret != "" && o.ClientSecretFile != "":
			return errors.New("at most one of client_secret and client_secret_file")
		case o.ClientSecret == "" && o.ClientSecretFile == "" && o.TLSConfig.CertFile == "" && o.TLSConfig.Cert == "":
			return errors.New("client_secret or client_secret_file is required (or a client certificate in tls_config)")
		}
		if jwt := jwtBearerKeys(o); jwt != "" {
			return fmt.Errorf("%s is only for grant_type %s", jwt, GrantJWTBearer)
		}
	case GrantJWTBearer:
		switch {
		case o.ClientSecret != "" || o.ClientSecretFile != "":
			return errors.New("client_secret and client_secret_file are not used by the jwt-bearer grant: the assertion is signed with client_certificate_key_file")
		case o.ClientCertificateKey != "" && o.ClientCertificateKeyFile != "":
			return errors.New("at most one of client_certificate_key and client_certificate_key_file")
		case o.ClientCertificateKey == "" && o.ClientCertificateKeyFile == "":
			return errors.New("client_certificate_key_file (the RSA private key, PEM) is required by the jwt-bearer grant")
		}
		switch o.SignatureAlgorithm {
		case "", "RS256", "RS384", "RS512":
		default:
			return fmt.Errorf("signature_algorithm %q: want RS256, RS384 or RS512", o.SignatureAlgorithm)
		}
	default:
		return fmt.Errorf("grant_type %q: want %s or %s", o.GrantType, GrantClientCredentials, GrantJWTBearer)
	}
	for _, k := range sortedKeys(o.EndpointParams) {
		for _, r := range endpointParamsReserved {
			if strings.EqualFold(k, r) {
				return fmt.Errorf("endpoint_params: %q is set by the exporter (use client_id, client_secret and scopes)", k)
			}
		}
	}
	return nil
}

// jwtBearerKeys names the first key set that only the JWT bearer grant
// uses, or "".
func jwtBearerKeys(o *promconfig.OAuth2) string {
	switch {
	case o.ClientCertificateKey != "":
		return "client_certificate_key"
	case o.ClientCertificateKeyFile != "":
		return "client_certificate_key_file"
	case o.ClientCertificateKeyID != "":
		return "client_certificate_key_id"
	case o.SignatureAlgorithm != "":
		return "signature_algorithm"
	case o.Iss != "":
		return "iss"
	case o.Audience != "":
		return "audience"
	case len(o.Claims) > 0:
		return "claims"
	}
	return ""
}

// checkTokenURL accepts an https URL, or http to a loopback host (a local
// token service): the client secret goes in the request.
func checkTokenURL(s string) error {
	if s == "" {
		return errors.New("token_url is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("token_url: %w", err)
	}
	if u.Host == "" {
		return fmt.Errorf("token_url %q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("token_url %q carries user info: put the client's credentials in client_id and client_secret", u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("token_url %q: http would send the client secret in clear: use https (http only to a loopback address)", s)
		}
	default:
		return fmt.Errorf("token_url %q: want an https URL", s)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setDirectory makes the auth section's file names relative to dir.
func (a *AuthConfig) setDirectory(dir string) {
	if a.PasswordFile != "" {
		a.PasswordFile = promconfig.JoinDir(dir, a.PasswordFile)
	}
	if a.BearerTokenFile != "" {
		a.BearerTokenFile = promconfig.JoinDir(dir, a.BearerTokenFile)
	}
	if a.OAuth2 != nil {
		a.OAuth2.SetDirectory(dir)
		a.OAuth2.ClientCertificateKeyFile = promconfig.JoinDir(dir, a.OAuth2.ClientCertificateKeyFile)
	}
}
