package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestLoadConfigErrors loads each broken file in testdata/config and checks
// the exact error, which names the offending key and value.
func TestLoadConfigErrors(t *testing.T) {
	tests := map[string]string{
		"unknown-key.yml":            "config testdata/config/unknown-key.yml: module \"default\": invalid config:\n  line 4: unknown key \"helo\"",
		"unknown-top.yml":            "config testdata/config/unknown-top.yml: invalid config:\n  line 3: unknown key \"target\"",
		"bad-tls.yml":                `config testdata/config/bad-tls.yml: module "default": unknown tls mode "sometimes" (want none, starttls or implicit)`,
		"bad-expect.yml":             `config testdata/config/bad-expect.yml: module "default": expect_reply: mail: reply class "6xx": want 2xx, 3xx, 4xx or 5xx`,
		"expect-unreached.yml":       `config testdata/config/expect-unreached.yml: module "default": expect_reply: phase "rcpt" is never reached by this module`,
		"crlf-helo.yml":              `config testdata/config/crlf-helo.yml: module "default": helo_name "probe.test\r\nMAIL FROM:<x@y>" contains a line break`,
		"rcpt-without-mail.yml":      `config testdata/config/rcpt-without-mail.yml: module "default": rcpt_to needs mail_from`,
		"plaintext-auth.yml":         `config testdata/config/plaintext-auth.yml: module "default": auth without tls would send the password in clear: use tls starttls or implicit, or set allow_plaintext`,
		"missing-password-file.yml":  `config testdata/config/missing-password-file.yml: module "default": auth: password_file: open testdata/config/does-not-exist.txt: no such file or directory`,
		"two-passwords.yml":          `config testdata/config/two-passwords.yml: module "default": auth: at most one of password and password_file`,
		"unknown-target-module.yml":  `config testdata/config/unknown-target-module.yml: targets[0] "127.0.0.1:25": unknown module "nope"`,
		"bad-target.yml":             `config testdata/config/bad-target.yml: targets[0]: target "mx.example.org:99999": port "99999" is not a number from 1 to 65535`,
		"duplicate-target.yml":       `config testdata/config/duplicate-target.yml: targets[1]: "127.0.0.1:25" with module "default" is listed twice`,
		"bad-policy.yml":             `config testdata/config/bad-policy.yml: probe_policy.deny: "10.0.0.0/40" is not a CIDR: netip.ParsePrefix("10.0.0.0/40"): prefix length out of range`,
		"no-modules.yml":             `config testdata/config/no-modules.yml: no modules defined`,
		"bad-timeout.yml":            `config testdata/config/bad-timeout.yml: module "default": not a valid duration string: "soon"`,
		"tls-config-without-tls.yml": `config testdata/config/tls-config-without-tls.yml: module "default": tls_config is set but tls is none`,
		"missing-ca.yml":             `config testdata/config/missing-ca.yml: module "default": tls_config: unable to read CA cert: unable to read file testdata/config/nope.pem: open testdata/config/nope.pem: no such file or directory`,
		"bad-ip-protocol.yml":        `config testdata/config/bad-ip-protocol.yml: module "default": unknown ip_protocol "ip5" (want ip4 or ip6)`,
		"bad-mx-success.yml":         `config testdata/config/bad-mx-success.yml: module "mx": mx_success "most": want all, any or primary`,
		"not-yaml.yml":               "config testdata/config/not-yaml.yml: yaml: line 1: did not find expected node content",
		"missing.yml":                "reading config: open testdata/config/missing.yml: no such file or directory",
		"null-module.yml":            `config testdata/config/null-module.yml: module "default" is empty (write {} for all defaults)`,
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := LoadConfig(filepath.Join("testdata/config", file))
			if errString(err) != want {
				t.Errorf("error:\n got: %s\nwant: %s", errString(err), want)
			}
		})
	}
	// Every file in testdata/config but good.yml is covered above.
	files, _ := filepath.Glob("testdata/config/*.yml")
	for _, f := range files {
		if base := filepath.Base(f); base != "good.yml" {
			if _, ok := tests[base]; !ok {
				t.Errorf("%s has no expected error", f)
			}
		}
	}
}

func TestLoadConfigGood(t *testing.T) {
	c, err := LoadConfig("testdata/config/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Modules["default"]
	if time.Duration(d.Timeout) != DefaultTimeout || d.Port != 25 || d.IPProtocol != "ip4" || !*d.IPProtocolFallback || d.TLS != "none" {
		t.Errorf("defaults not applied: %+v", d)
	}
	if p := c.Modules["smtps"].Port; p != 465 {
		t.Errorf("implicit TLS port defaults to %d, want 465", p)
	}
	sub := c.Modules["submission"].Options()
	if sub.Auth == nil || sub.TLS != smtp.TLSStartTLS || sub.TLSConfig == nil {
		t.Fatalf("submission options = %+v", sub)
	}
	if pw, err := sub.Auth.Password(); err != nil || pw != "hunter2" {
		t.Errorf("password from file = %q, %v", pw, err)
	}
	if c.Modules["relay"].Options().Expect[smtp.PhaseRcpt] != 5 {
		t.Errorf("expectation not compiled")
	}
	if c.Modules["mx"].Options().Resolver == "" {
		t.Errorf("resolver not built")
	}
	if t0, t1 := c.Targets[0], c.Targets[1]; t0.Module != "default" || t0.spec.host != "127.0.0.1" || t0.spec.port != 2525 || t1.spec.host != "example.org" || t1.spec.module != c.Modules["mx"] {
		t.Errorf("targets = %+v", c.Targets)
	}
	if !c.Modules["smtps"].Options().TLSConfig.InsecureSkipVerify {
		t.Errorf("tls_config not applied")
	}
}

// TestConfigStringRedactsSecrets: /config shows the config without secrets.
func TestConfigStringRedactsSecrets(t *testing.T) {
	c, err := ParseConfig([]byte("modules:\n  m:\n    tls: implicit\n    auth: {username: u, password: s3cr3t-in-config}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	out := c.String()
	if strings.Contains(out, "s3cr3t-in-config") || !strings.Contains(out, "<secret>") {
		t.Errorf("config rendering leaks or hides wrongly:\n%s", out)
	}
}

func TestSafeConfigReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	sc := NewSafeConfig(reg)
	write("modules:\n  default:\n    helo_name: one.test\n")
	if err := sc.Reload(path, log.NewNopLogger()); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(sc.success); got != 1 {
		t.Errorf("success gauge = %v", got)
	}
	write("modules:\n  default:\n    helo_name: two.test\n    bogus: 1\n")
	if err := sc.Reload(path, log.NewNopLogger()); err == nil {
		t.Fatal("bad config reloaded without error")
	}
	if got := sc.Get().Modules["default"].HeloName; got != "one.test" {
		t.Errorf("after a bad reload the running config has helo %q, want the old one.test", got)
	}
	if got := testutil.ToFloat64(sc.success); got != 0 {
		t.Errorf("success gauge after a bad reload = %v, want 0", got)
	}
	write("modules:\n  default:\n    helo_name: three.test\n")
	if err := sc.Reload(path, log.NewNopLogger()); err != nil || sc.Get().Modules["default"].HeloName != "three.test" {
		t.Errorf("good reload after a bad one: %v", err)
	}
	if testutil.ToFloat64(sc.success) != 1 || testutil.ToFloat64(sc.seconds) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("gauges not updated after a good reload")
	}
}

// FuzzParseConfig: the config loader never panics on any input.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"modules:\n  default: {}\n", "modules:\n  d:\n    expect_reply: {rcpt: 5xx}\n    mail_from: a@b\n    rcpt_to: [c@d]\n",
		"probe_policy:\n  deny: [10.0.0.0/8]\nmodules: {a: {}}\n", "targets: [{target: x}]\nmodules: {default: {}}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, t.TempDir())
		if err == nil && len(c.Modules) == 0 {
			t.Fatal("accepted a config without modules")
		}
	})
}

// TestPasswordFileReadAtProbeTime: rotating the password file needs no reload.
func TestPasswordFileReadAtProbeTime(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig([]byte("modules:\n  m:\n    tls: implicit\n    auth: {username: u, password_file: pw}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	password := c.Modules["m"].Options().Auth.Password
	if got, err := password(); err != nil || got != "first" {
		t.Fatalf("password = %q, %v", got, err)
	}
	if err := os.WriteFile(pw, []byte("second\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := password(); err != nil || got != "second" {
		t.Errorf("after rotation password = %q, %v", got, err)
	}
	os.Remove(pw)
	if _, err := password(); err == nil || strings.Contains(err.Error(), "second") {
		t.Errorf("a missing file: err = %v", err)
	}
}
