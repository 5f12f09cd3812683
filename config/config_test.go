package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	// Every test binary accepts -update (go test ./... -run Golden -args -update).
	_ "github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// TestLoadConfigErrors loads each broken file in testdata and checks
// the exact error, which names the file, the line, the key's path and the
// value.
func TestLoadConfigErrors(t *testing.T) {
	tests := map[string]string{
		"bad-addresses.yml":          "config testdata/bad-addresses.yml:3: modules.default.addresses: \"every\" is not first or all",
		"bad-auth-target.yml":        "config testdata/bad-auth-target.yml:5: modules.default.auth.targets[0]: \"not a host!\" is not a host, host:port or *.domain pattern: target \"not a host!\": host name \"not a host!\" contains ' '",
		"bad-expect.yml":             "config testdata/bad-expect.yml:4: modules.default.expect_reply.mail: \"6xx\" is not a reply class: write 2xx, 4xx or 5xx",
		"bad-ip-protocol.yml":        "config testdata/bad-ip-protocol.yml:3: modules.default.ip_protocol: \"ip5\" is not ip4 or ip6",
		"bad-mx-success.yml":         "config testdata/bad-mx-success.yml:4: modules.mx.mx_success: \"most\" is not all, any or primary",
		"bad-policy.yml":             "config testdata/bad-policy.yml:4: probe_policy.deny[0]: \"10.0.0.0/40\" is not a CIDR such as 192.0.2.0/24: prefix length out of range",
		"bad-target.yml":             "config testdata/bad-target.yml:4: targets[0].target: target \"mx.example.org:99999\": port \"99999\" is not a number from 1 to 65535",
		"bad-timeout.yml":            "config testdata/bad-timeout.yml:3: modules.default.timeout: \"soon\" is not a duration: write a number and a unit, such as 10s, 1m30s or 2h",
		"bad-tls.yml":                "config testdata/bad-tls.yml:3: modules.default.tls: \"sometimes\" is not none, starttls or implicit",
		"crlf-helo.yml":              "config testdata/crlf-helo.yml:3: modules.default.helo_name: \"probe.test\\r\\nMAIL FROM:<x@y>\" contains a line break",
		"dane-without-tls.yml":       "config testdata/dane-without-tls.yml:3: modules.default.dane: needs tls: starttls or implicit: DANE verifies the certificate of a TLS connection",
		"delivery-bad-imap.yml":      "config testdata/delivery-bad-imap.yml:6: modules.default.delivery_check.imap: target \"imap.example.org:99999\": port \"99999\" is not a number from 1 to 65535",
		"delivery-plaintext.yml":     "config testdata/delivery-plaintext.yml:6: modules.default.delivery_check.tls: none would send the IMAP password in clear: write starttls or implicit, or set delivery_check.allow_plaintext: true",
		"delivery-without-data.yml":  "config testdata/delivery-without-data.yml:3: modules.default.delivery_check: needs send_data (and mail_from, rcpt_to): there is no message to wait for",
		"duplicate-spelling.yml":     "config testdata/duplicate-spelling.yml:5: targets[1].target: \"127.0.0.1:25\" with module \"default\" is targets[0] (\"127.0.0.1\") again",
		"duplicate-target.yml":       "config testdata/duplicate-target.yml:5: targets[1].target: \"127.0.0.1:25\" with module \"default\" is targets[0] (\"127.0.0.1:25\") again",
		"expect-3xx.yml":             "config testdata/expect-3xx.yml:6: modules.default.expect_reply.data: 3xx cannot end the dialog (it leaves DATA or AUTH open): expect 2xx, 4xx or 5xx",
		"expect-unreached.yml":       "config testdata/expect-unreached.yml:3: modules.default.expect_reply.rcpt: this module never reaches phase rcpt",
		"helo-non-ascii.yml":         "config testdata/helo-non-ascii.yml:3: modules.default.helo_name: \"prøbe.test\" contains a non-ASCII character",
		"mta-sts-without-mx.yml":     "config testdata/mta-sts-without-mx.yml:3: modules.default.mta_sts: needs mx_lookup: a policy is a domain's, checked against its MX hosts",
		"mx-max-hosts.yml":           "config testdata/mx-max-hosts.yml:4: modules.mx.mx_max_hosts: 100000 is not from 1 to 20",
		"no-modules.yml":             "config testdata/no-modules.yml: modules: no module is defined: write at least one, such as modules: {default: {}}",
		"not-yaml.yml":               "config testdata/not-yaml.yml:1: not valid YAML: did not find expected node content",
		"null-module.yml":            "config testdata/null-module.yml:2: modules.default: is empty: write {} for all the defaults",
		"plaintext-auth.yml":         "config testdata/plaintext-auth.yml:3: modules.default.auth: with tls: none would send the password in clear: set tls: starttls or implicit, or auth.allow_plaintext: true",
		"rcpt-without-mail.yml":      "config testdata/rcpt-without-mail.yml:3: modules.default.rcpt_to: needs mail_from: RCPT TO comes after MAIL FROM",
		"tls-config-without-tls.yml": "config testdata/tls-config-without-tls.yml:3: modules.default.tls_config: is set, but tls is none: set tls: starttls or implicit, or leave tls_config out",
		"two-passwords.yml":          "config testdata/two-passwords.yml:7: modules.default.auth.password_file: is set together with password: keep one of them",
		"unknown-key.yml":            "config testdata/unknown-key.yml:4: modules.default.helo: unknown key: did you mean helo_name?",
		"unknown-target-module.yml":  "config testdata/unknown-target-module.yml:5: targets[0].module: unknown module \"nope\" (the modules are \"default\")",
		"unknown-top.yml":            "config testdata/unknown-top.yml:3: target: unknown key: did you mean targets?",
		"missing.yml":                "reading config: open testdata/missing.yml: no such file or directory",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := LoadFile(filepath.Join("testdata", file))
			if errString(err) != want {
				t.Errorf("error:\n got: %s\nwant: %s", errString(err), want)
			}
		})
	}
	// Every file in testdata but these is covered above: good.yml, and the
	// two that decode but do not compile (package probe's tests load them).
	files, _ := filepath.Glob("testdata/*.yml")
	for _, f := range files {
		if base := filepath.Base(f); base != "good.yml" && base != "missing-ca.yml" && base != "missing-password-file.yml" {
			if _, ok := tests[base]; !ok {
				t.Errorf("%s has no expected error", f)
			}
		}
	}
}

func TestLoadFileGood(t *testing.T) {
	c, err := LoadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Modules["default"]
	if time.Duration(d.Timeout) != DefaultTimeout || d.Port != 25 || d.IPProtocol != "ip4" || !*d.IPProtocolFallback || d.TLS != "none" ||
		d.MXSuccess != MXSuccessAll || d.MXMaxHosts != DefaultMXMaxHosts {
		t.Errorf("defaults not applied: %+v", d)
	}
	if p := c.Modules["smtps"].Port; p != 465 {
		t.Errorf("implicit TLS port defaults to %d, want 465", p)
	}
	if pf := c.Modules["submission"].Auth.PasswordFile; pf != filepath.Join("testdata", "password.txt") {
		t.Errorf("password_file is not relative to the config file: %q", pf)
	}
	if c.Targets[0].Module != DefaultModuleName || c.Targets[1].Module != "mx" {
		t.Errorf("targets = %+v", c.Targets)
	}
}

// TestConfigStringRedactsSecrets: /config shows the config without secrets.
func TestConfigStringRedactsSecrets(t *testing.T) {
	c, err := Parse([]byte("modules:\n  m:\n    tls: implicit\n    auth: {username: u, password: s3cr3t-in-config}\n"+
		"    mail_from: a@example.org\n    rcpt_to: [b@example.org]\n    send_data: true\n"+
		"    delivery_check: {imap: imap.example.org, username: u, password: imap-s3cr3t}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	out := c.String()
	if strings.Contains(out, "s3cr3t-in-config") || strings.Contains(out, "imap-s3cr3t") || strings.Count(out, "<secret>") != 2 {
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
	sc := NewSafeConfig(reg, func(c *Config) (*Config, error) { return c, nil })
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

// FuzzParseConfig: the config loader never panics on any input, and its
// errors never show Go's types or the decoder's words.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"modules:\n  default: {}\n", "modules:\n  d:\n    expect_reply: {rcpt: 5xx}\n    mail_from: a@b\n    rcpt_to: [c@d]\n",
		"probe_policy:\n  deny: [10.0.0.0/8]\nmodules: {a: {}}\n", "targets: [{target: x}]\nmodules: {default: {}}\n",
		"modules:\n  base: &b {helo_name: a.b, port: 25}\n  other:\n    <<: *b\n    tls: true\n",
		"modules: &a {x: *a, default: {preferred_ip_protocol: ip4, port: 0}}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, t.TempDir())
		if err == nil && len(c.Modules) == 0 {
			t.Fatal("accepted a config without modules")
		}
		// Every error is in the config file's words, at a key or a line.
		var ke *KeyError
		if err != nil && !errors.As(err, &ke) {
			t.Fatalf("error without a key or line: %v", err)
		}
		// (What the file itself holds, such as a module named "0!!0", may
		// come back in the message.)
		if err != nil {
			if leak := goInternals(err.Error()); leak != "" && !bytes.Contains(data, []byte(leak)) {
				t.Fatalf("error shows Go's %q: %v", leak, err)
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSafeConfigBuildFailureKeepsOld: a file that decodes but does not
// compile (here, the build function refuses it) keeps the old one running.
func TestSafeConfigBuildFailureKeepsOld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	sc := NewSafeConfig(nil, func(c *Config) (string, error) {
		if _, ok := c.Modules["broken"]; ok {
			return "", AtKey(errors.New("cannot read nope.pem: no such file or directory"), "modules", "broken", "tls_config", "ca_file")
		}
		return c.Modules["default"].HeloName, nil
	})
	var loaded []string
	sc.OnLoad(func(s string) { loaded = append(loaded, s) })
	for _, tc := range []struct{ file, wantErr, want string }{
		{"modules:\n  default: {helo_name: one.test}\n", "", "one.test"},
		{"modules:\n  default: {helo_name: two.test}\n  broken:\n    tls: implicit\n    tls_config: {ca_file: nope.pem}\n",
			"config " + path + ":5: modules.broken.tls_config.ca_file: cannot read nope.pem: no such file or directory", "one.test"},
		{"modules:\n  default: {helo_name: three.test}\n", "", "three.test"},
	} {
		if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := sc.Reload(path, log.NewNopLogger()); errString(err) != tc.wantErr {
			t.Errorf("Reload = %v, want %q", err, tc.wantErr)
		}
		if got := sc.Get(); got != tc.want {
			t.Errorf("running %q, want %q", got, tc.want)
		}
	}
	if strings.Join(loaded, ",") != "one.test,three.test" {
		t.Errorf("OnLoad saw %v", loaded)
	}
}
