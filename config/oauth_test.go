package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// oauthModule is a module with tls and an auth section made of lines.
func oauthModule(auth ...string) string {
	return "modules:\n  o365:\n    port: 587\n    tls: starttls\n    auth:\n      username: relay@example.org\n" +
		strings.Join(func() []string {
			out := make([]string, len(auth))
			for i, l := range auth {
				out[i] = "      " + l + "\n"
			}
			return out
		}(), "")
}

// TestOAuthConfigErrors: every wrong combination of the OAuth keys is
// refused with an error that names the module and the key.
func TestOAuthConfigErrors(t *testing.T) {
	oauth2 := []string{"oauth2:", "  client_id: app", "  client_secret: s3cr3t", "  token_url: https://login.example.com/t/oauth2/v2.0/token"}
	// with is XOAUTH2 with oauth2 and more lines (of the oauth2 block when
	// they are indented).
	with := func(extra ...string) []string {
		return append(append([]string{"mechanism: XOAUTH2"}, oauth2...), extra...)
	}
	// jwtBearer is XOAUTH2 with a jwt-bearer oauth2 block and more keys.
	jwtBearer := func(keys ...string) []string {
		lines := []string{"mechanism: XOAUTH2", "oauth2:", "  client_id: probe@project.iam.gserviceaccount.com",
			"  token_url: https://oauth2.googleapis.com/token", "  grant_type: urn:ietf:params:oauth:grant-type:jwt-bearer"}
		for _, k := range keys {
			lines = append(lines, "  "+k)
		}
		return lines
	}
	for _, tc := range []struct {
		name string
		auth []string
		want string // "" when valid
	}{
		{"XOAUTH2 with oauth2", append([]string{"mechanism: XOAUTH2"}, oauth2...), ""},
		{"OAUTHBEARER with bearer_token_file", []string{"mechanism: oauthbearer", "bearer_token_file: /run/tokens/smtp"}, ""},
		{"client certificate instead of a secret", []string{"mechanism: XOAUTH2", "oauth2:", "  client_id: app", "  token_url: https://login.example.com/token",
			"  tls_config: {cert_file: c.pem, key_file: k.pem}"}, ""},
		{"http to loopback", []string{"mechanism: XOAUTH2", "oauth2: {client_id: a, client_secret: s, token_url: 'http://127.0.0.1:8080/token'}"}, ""},
		{"XOAUTH2 without a token", []string{"mechanism: XOAUTH2"},
			`modules.o365.auth.mechanism: XOAUTH2 needs oauth2 (a token endpoint) or bearer_token_file`},
		{"XOAUTH2 with a password", []string{"mechanism: XOAUTH2", "password_file: pw"},
			`modules.o365.auth.password_file: is not used by mechanism XOAUTH2, which takes a bearer token from oauth2 or bearer_token_file`},
		{"oauth2 with PLAIN", append([]string{"mechanism: PLAIN"}, oauth2...),
			`modules.o365.auth.oauth2: needs mechanism XOAUTH2 or OAUTHBEARER (mechanism is PLAIN)`},
		{"oauth2 without a mechanism", oauth2,
			`modules.o365.auth.oauth2: needs mechanism XOAUTH2 or OAUTHBEARER (mechanism is not set)`},
		{"password and oauth2", append([]string{"mechanism: XOAUTH2", "password: pw"}, oauth2...),
			`modules.o365.auth.oauth2: is set together with password: a module sends one credential`},
		{"oauth2 and bearer_token_file", with("bearer_token_file: t"),
			`modules.o365.auth.bearer_token_file: is set together with oauth2: keep one of them`},
		{"unknown mechanism", []string{"mechanism: GSSAPI", "password: pw"},
			`modules.o365.auth.mechanism: "GSSAPI" is not PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER`},
		{"no client_id", []string{"mechanism: XOAUTH2", "oauth2: {client_secret: s, token_url: 'https://login.example.com/token'}"},
			`modules.o365.auth.oauth2: client_id is required`},
		{"no token_url", []string{"mechanism: XOAUTH2", "oauth2: {client_id: a, client_secret: s}"},
			`modules.o365.auth.oauth2: token_url is required`},
		{"http token_url", []string{"mechanism: XOAUTH2", "oauth2: {client_id: a, client_secret: s, token_url: 'http://login.example.com/token'}"},
			`modules.o365.auth.oauth2: token_url "http://login.example.com/token": http would send the client secret in clear: use https (http only to a loopback address)`},
		{"token_url with user info", []string{"mechanism: XOAUTH2", "oauth2: {client_id: a, client_secret: s, token_url: 'https://a:pw@login.example.com/token'}"},
			`modules.o365.auth.oauth2: token_url "https://a:xxxxx@login.example.com/token" carries user info: put the client's credentials in client_id and client_secret`},
		{"no secret", []string{"mechanism: XOAUTH2", "oauth2: {client_id: a, token_url: 'https://login.example.com/token'}"},
			`modules.o365.auth.oauth2: client_secret or client_secret_file is required (or a client certificate in tls_config)`},
		{"two secrets", with("  client_secret_file: f"),
			`modules.o365.auth.oauth2: at most one of client_secret and client_secret_file`},
		{"secret manager", with("  client_secret_ref: vault"),
			`modules.o365.auth.oauth2: client_secret_ref and client_certificate_key_ref are not supported (there is no secret manager): use client_secret_file or client_certificate_key_file`},
		{"another grant", with("  grant_type: password"),
			`modules.o365.auth.oauth2: grant_type "password": want client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer`},
		{"jwt-bearer keys with client credentials", with("  claims: {sub: relay@example.org}"),
			`modules.o365.auth.oauth2: claims is only for grant_type urn:ietf:params:oauth:grant-type:jwt-bearer`},
		{"jwt-bearer", jwtBearer("client_certificate_key_file: sa.pem", "claims: {sub: relay@example.org}", "signature_algorithm: RS256"), ""},
		{"jwt-bearer without a key", jwtBearer(),
			`modules.o365.auth.oauth2: client_certificate_key_file (the RSA private key, PEM) is required by the jwt-bearer grant`},
		{"jwt-bearer with a client secret", jwtBearer("client_certificate_key_file: sa.pem", "client_secret: s"),
			`modules.o365.auth.oauth2: client_secret and client_secret_file are not used by the jwt-bearer grant: the assertion is signed with client_certificate_key_file`},
		{"jwt-bearer with two keys", jwtBearer("client_certificate_key_file: sa.pem", "client_certificate_key: k"),
			`modules.o365.auth.oauth2: at most one of client_certificate_key and client_certificate_key_file`},
		{"jwt-bearer with ES256", jwtBearer("client_certificate_key_file: sa.pem", "signature_algorithm: ES256"),
			`modules.o365.auth.oauth2: signature_algorithm "ES256": want RS256, RS384 or RS512`},
		{"reserved endpoint param", with("  endpoint_params: {resource: r, Scope: x}"),
			`modules.o365.auth.oauth2: endpoint_params: "Scope" is set by the exporter (use client_id, client_secret and scopes)`},
		{"misspelt key inside oauth2", with("  client_secrt: x"),
			"modules.o365.auth.oauth2.client_secrt: unknown key: did you mean client_secret?"},
		{"proxy settings checked", with("  no_proxy: example.org"),
			`modules.o365.auth.oauth2: if no_proxy is configured, proxy_url must also be configured`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(oauthModule(tc.auth...)), ".")
			if got := errString(err); got != tc.want {
				t.Errorf("error\n got %s\nwant %s\nconfig:\n%s", got, tc.want, oauthModule(tc.auth...))
			}
		})
	}
}

// TestOAuthConfigRendering: /config shows the oauth2 block without the
// client secret, and relative file names are taken from the config's
// directory.
func TestOAuthConfigRendering(t *testing.T) {
	c, err := Parse([]byte(oauthModule("mechanism: XOAUTH2", "oauth2:", "  client_id: app-id", "  client_secret: cl13nt-s3cr3t",
		"  token_url: https://login.example.com/t/oauth2/v2.0/token", "  scopes: [https://outlook.office365.com/.default]",
		"  endpoint_params: {resource: r}", "  proxy_url: http://user:pr0xy-pw@proxy.example.org:3128",
		"  proxy_connect_header: {Proxy-Authorization: [Bearer pr0xy-t0ken]}",
		"  tls_config: {ca_file: ca.pem}")+
		"  file:\n    tls: implicit\n    auth: {username: u, mechanism: OAUTHBEARER, bearer_token_file: tokens/smtp}\n"+
		"  secret_file:\n    tls: implicit\n    auth: {username: u, mechanism: XOAUTH2, oauth2: {client_id: a, client_secret_file: secret, token_url: 'https://l.example/t'}}\n"+
		"  google:\n    tls: implicit\n    auth: {username: u, mechanism: XOAUTH2, oauth2: {client_id: a, grant_type: '"+GrantJWTBearer+"', client_certificate_key_file: sa.pem, token_url: 'https://l.example/t'}}\n"+
		"  google_inline:\n    tls: implicit\n    auth: {username: u, mechanism: XOAUTH2, oauth2: {client_id: a, grant_type: '"+GrantJWTBearer+"', client_certificate_key: pr1vate-k3y, token_url: 'https://l.example/t'}}\n"), "/etc/smtp_exporter")
	if err != nil {
		t.Fatal(err)
	}
	out := c.String()
	for _, secret := range []string{"cl13nt-s3cr3t", "pr0xy-pw", "pr0xy-t0ken", "pr1vate-k3y"} {
		if strings.Contains(out, secret) {
			t.Errorf("/config shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"client_id: app-id", "client_secret: <secret>", "token_url: https://login.example.com/t/oauth2/v2.0/token",
		"- https://outlook.office365.com/.default", "bearer_token_file: /etc/smtp_exporter/tokens/smtp"} {
		if !strings.Contains(out, want) {
			t.Errorf("/config lacks %q:\n%s", want, out)
		}
	}
	if got := c.Modules["o365"].Auth.OAuth2.TLSConfig.CAFile; got != filepath.Join("/etc/smtp_exporter", "ca.pem") {
		t.Errorf("oauth2 tls_config ca_file = %q", got)
	}
	if got := c.Modules["secret_file"].Auth.OAuth2.ClientSecretFile; got != "/etc/smtp_exporter/secret" {
		t.Errorf("client_secret_file = %q", got)
	}
	if got := c.Modules["google"].Auth.OAuth2.ClientCertificateKeyFile; got != "/etc/smtp_exporter/sa.pem" {
		t.Errorf("client_certificate_key_file = %q", got)
	}
}
