package probe

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/config"
	// Every test binary accepts -update (go test ./... -run Golden -args -update).
	_ "github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

func build(t *testing.T, conf, dir string) *Set {
	t.Helper()
	c, err := config.Parse([]byte(conf), dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildGood(t *testing.T) {
	c, err := config.LoadFile("../config/testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(c)
	if err != nil {
		t.Fatal(err)
	}
	sub := s.Plans["submission"].Options
	if sub.Auth == nil || sub.TLS != smtp.TLSStartTLS || sub.TLSConfig == nil {
		t.Fatalf("submission options = %+v", sub)
	}
	if pw, err := sub.Auth.Password(); err != nil || pw != "hunter2" {
		t.Errorf("password from file = %q, %v", pw, err)
	}
	if s.Plans["relay"].Options.Expect[smtp.PhaseRcpt] != 5 {
		t.Errorf("expectation not compiled")
	}
	if mx := s.Plans["mx"]; mx.MX == nil || mx.MX.Success != config.MXSuccessAll || mx.Options.Resolver != "127.0.0.1:5353" {
		t.Errorf("mx plan = %+v", mx)
	}
	if !s.Plans["smtps"].Options.TLSConfig.InsecureSkipVerify {
		t.Errorf("tls_config not applied")
	}
	if t0, t1 := s.Static[0], s.Static[1]; t0.Host != "127.0.0.1" || t0.Port != 2525 || t0.Key != "127.0.0.1:2525" ||
		t1.Host != "example.org" || t1.Plan != s.Plans["mx"] || !t0.Static {
		t.Errorf("static targets = %+v", s.Static)
	}
	if !s.IsStatic(mustTarget(t, s.Plans["default"], "127.0.0.1:2525")) || s.IsStatic(mustTarget(t, s.Plans["default"], "127.0.0.1")) {
		t.Errorf("IsStatic does not match the static targets by their normalised key")
	}
}

func mustTarget(t *testing.T, p *Plan, s string) Target {
	t.Helper()
	tgt, err := p.ParseTarget(s)
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// TestPasswordFile: read at every probe (rotation needs no reload); only a
// regular file of a few KiB, and nothing that blocks or never ends.
func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := build(t, "modules:\n  m:\n    tls: implicit\n    auth: {username: u, password_file: pw}\n", dir)
	password := s.Plans["m"].Options.Auth.Password
	if got, err := password(); err != nil || got != "first" {
		t.Fatalf("password = %q, %v", got, err)
	}
	if err := os.WriteFile(pw, []byte("second\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := password(); err != nil || got != "second" {
		t.Errorf("after rotation password = %q, %v", got, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", MaxPasswordFileSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(dir, "two")
	if err := os.WriteFile(two, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/dev/zero":                "password_file /dev/zero is not a regular file (Dc---------)",
		fifo:                       "password_file " + fifo + " is not a regular file (p---------)",
		dir:                        "password_file " + dir + " is not a regular file (d---------)",
		big:                        "password_file " + big + " is larger than 4096 bytes",
		two:                        "password_file " + two + " holds more than one line",
		filepath.Join(dir, "nope"): "password_file: open " + filepath.Join(dir, "nope") + ": no such file or directory",
	} {
		if _, err := readPasswordFile(path); errString(err) != want {
			t.Errorf("readPasswordFile(%s) = %v, want %q", path, err, want)
		}
	}
	c, err := config.Parse([]byte("modules:\n  m:\n    tls: implicit\n    auth: {username: u, password_file: fifo}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(c); errString(err) != `module "m": auth: password_file `+fifo+` is not a regular file (p---------)` {
		t.Errorf("a FIFO as password_file: %v", err)
	}
}

// TestMayAuthenticate: a module's credentials go only to its static targets
// and to what its auth.targets names.
func TestMayAuthenticate(t *testing.T) {
	s := build(t, `
modules:
  plain: {}
  sub:
    port: 587
    tls: starttls
    auth:
      username: u
      password: p
      targets: [smtp.example.org, "relay.example.net:2525", "*.mail.example.com", "192.0.2.7", "[2001:db8::1]:587"]
targets:
  - target: static.example.org
    module: sub
`, ".")
	for _, tc := range []struct {
		module, target string
		want           bool
	}{
		{"plain", "anything.example", true},
		{"sub", "static.example.org", true},
		{"sub", "Static.Example.org.:587", true},
		{"sub", "static.example.org:25", false},
		{"sub", "smtp.example.org", true},
		{"sub", "SMTP.example.org:2525", true},
		{"sub", "relay.example.net:2525", true},
		{"sub", "relay.example.net", false},
		{"sub", "a.mail.example.com", true},
		{"sub", "mail.example.com", false},
		{"sub", "evilmail.example.com", false},
		{"sub", "192.0.2.7:465", true},
		{"sub", "192.0.2.8", false},
		{"sub", "[2001:db8::1]", true},
		{"sub", "[2001:db8::1]:25", false},
		{"sub", "attacker.example", false},
	} {
		tgt := mustTarget(t, s.Plans[tc.module], tc.target)
		if got := s.MayAuthenticate(tgt); got != tc.want {
			t.Errorf("MayAuthenticate(%s, %s) = %t, want %t", tc.module, tc.target, got, tc.want)
		}
	}
}

// TestBuildErrors: what only compiling can find (files the config names)
// fails the load, naming the module and the key.
func TestBuildErrors(t *testing.T) {
	for file, want := range map[string]string{
		"missing-ca.yml":            `module "default": tls_config: unable to read CA cert: unable to read file ../config/testdata/nope.pem: open ../config/testdata/nope.pem: no such file or directory`,
		"missing-password-file.yml": `module "default": auth: password_file: open ../config/testdata/does-not-exist.txt: no such file or directory`,
	} {
		c, err := config.LoadFile(filepath.Join("../config/testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Build(c); errString(err) != want {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
}

// TestReportNamesTheDomainRows: the rows of an MX probe without an
// exchanger say what failed: the MX lookup, or the MTA-STS policy.
func TestReportNamesTheDomainRows(t *testing.T) {
	s := build(t, "modules:\n  mx: {mx_lookup: true, mta_sts: true}\n", ".")
	tgt := mustTarget(t, s.Plans["mx"], "example.org")
	for _, tc := range []struct {
		mx   *MXResult
		want string
	}{
		{&MXResult{Domain: "example.org", Err: &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonNullMX}}, "  MX lookup failed in phase resolve (null_mx)"},
		{&MXResult{Domain: "example.org", Found: 1, MTASTSErr: &smtp.Error{Phase: PhaseMTASTS, Reason: smtp.ReasonTimeout},
			Hosts: []MXHost{{Name: "mx.example.org", Preference: 10, Result: &smtp.Result{}}}}, "  MTA-STS policy failed in phase mta_sts (timeout)"},
	} {
		o := &Outcome{Target: tgt}
		o.fromMX(tc.mx, config.MXSuccessAll)
		var b strings.Builder
		WriteReport(&b, o)
		if !strings.Contains(b.String(), tc.want) || o.Success {
			t.Errorf("report lacks %q (success %t):\n%s", tc.want, o.Success, b.String())
		}
	}
}
