package main

import (
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestProbeCommandOverrides: the probe command's flags override the module,
// checked as the config file is (a bad value is a usage error, exit 3,
// naming the flag); without them the module runs as written.
func TestProbeCommandOverrides(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	_, port, _ := strings.Cut(ok.Addr, ":")
	dir := t.TempDir()
	conf := writeFile(t, dir, "c.yml", "modules:\n  default:\n    helo_name: probe.test\n    timeout: 3s\n"+
		"  tls:\n    helo_name: probe.test\n    tls: starttls\n    tls_config: {server_name: mx.example.org}\n"+
		"  rcpt:\n    helo_name: probe.test\n    mail_from: from@example.org\n    rcpt_to: [to@example.org]\n"+
		"  dane:\n    tls: starttls\n    dane: true\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		notOut   []string
		wantErr  string
	}{
		{"the module as written", []string{ok.Addr}, 0, []string{"C: EHLO probe.test", "C: QUIT"}, []string{"MAIL FROM"}, ""},
		{"--helo", []string{ok.Addr, "--helo=over.example.org"}, 0, []string{"C: EHLO over.example.org"}, []string{"EHLO probe.test"}, ""},
		{"--mail-from, --rcpt-to twice, --data", []string{ok.Addr, "--mail-from=a@example.org", "--rcpt-to=b@example.org", "--rcpt-to=c@example.org", "--data"}, 0,
			[]string{"C: MAIL FROM:<a@example.org>", "C: RCPT TO:<b@example.org>", "C: RCPT TO:<c@example.org>", "C: DATA", "S: 250 2.0.0 Ok: queued"}, nil, ""},
		{"--rcpt-to replaces the module's", []string{ok.Addr, "--module=rcpt", "--rcpt-to=other@example.org"}, 0,
			[]string{"C: MAIL FROM:<from@example.org>", "C: RCPT TO:<other@example.org>"}, []string{"to@example.org"}, ""},
		{"--no-data", []string{ok.Addr, "--module=rcpt", "--no-data"}, 0, []string{"C: RCPT TO:<to@example.org>"}, []string{"C: DATA"}, ""},
		{"--port", []string{"127.0.0.1", "--port=" + port}, 0, []string{"connected to " + ok.Addr}, nil, ""},
		{"--tls starttls", []string{ok.Addr, "--tls=starttls"}, 2, []string{"failed in phase starttls (unsupported)"}, nil, ""},
		{"--tls none drops the module's tls_config", []string{ok.Addr, "--module=tls", "--tls=none"}, 0, []string{"C: QUIT"}, []string{"STARTTLS"}, ""},
		{"--mx-lookup reads the target as a domain", []string{ok.Addr, "--mx-lookup"}, 3, nil, nil, "an mx_lookup module takes a domain name"},
		{"--ip-protocol", []string{ok.Addr, "--ip-protocol=ip5"}, 3, nil, nil, `smtp_exporter: --ip-protocol: "ip5" is not ip4 or ip6` + "\n"},
		{"--helo with a space", []string{ok.Addr, "--helo=bad name"}, 3, nil, nil, `smtp_exporter: --helo: "bad name" is not a domain: ' ' is not a letter, digit or hyphen` + "\n"},
		{"--helo with CRLF", []string{ok.Addr, "--helo=x\r\nMAIL FROM:<a@b>"}, 3, nil, nil, `smtp_exporter: --helo: "x\r\nMAIL FROM:<a@b>" contains a line break` + "\n"},
		{"--mail-from", []string{ok.Addr, "--mail-from=a b@c"}, 3, nil, nil, `smtp_exporter: --mail-from: "a b@c" contains ' '` + "\n"},
		{"--rcpt-to without mail_from", []string{ok.Addr, "--rcpt-to=b@example.org"}, 3, nil, nil, "smtp_exporter: --rcpt-to: needs --mail-from: RCPT TO comes after MAIL FROM\n"},
		{"--data without rcpt_to", []string{ok.Addr, "--data"}, 3, nil, nil, "smtp_exporter: --data: needs --rcpt-to: DATA comes after RCPT TO\n"},
		{"--port 0", []string{ok.Addr, "--port=0"}, 3, nil, nil, "smtp_exporter: --port: 0 is not a port number: write one from 1 to 65535\n"},
		{"--port smtp", []string{ok.Addr, "--port=smtp"}, 3, nil, nil, `smtp_exporter: --port: "smtp" is not a port number from 1 to 65535` + "\n"},
		{"--tls true", []string{ok.Addr, "--tls=true"}, 3, nil, nil, `smtp_exporter: --tls: "true" is not none, starttls or implicit: blackbox_exporter's tls: true (TLS from the first byte) is tls: implicit here, and STARTTLS is tls: starttls` + "\n"},
		{"--insecure-skip-verify with tls none", []string{ok.Addr, "--insecure-skip-verify"}, 3, nil, nil,
			"smtp_exporter: --insecure-skip-verify: is set, but tls is none: set tls: starttls or implicit, or leave tls_config out\n"},
		{"a module key the flags broke", []string{ok.Addr, "--module=dane", "--tls=none"}, 3, nil, nil,
			`smtp_exporter: module "dane" with --tls: dane: needs tls: starttls or implicit: DANE verifies the certificate of a TLS connection` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"probe", "--config.file=" + conf}, tc.args...)...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notOut {
				if strings.Contains(out, w) {
					t.Errorf("stdout has %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr %q, want %q", errOut, tc.wantErr)
			}
		})
	}
}

// TestProbeCommandTimeoutMustBePositive: a negative or zero --timeout is a
// usage error (exit 3), not silently replaced by the module's timeout; a
// positive one is taken.
func TestProbeCommandTimeoutMustBePositive(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	conf := writeFile(t, t.TempDir(), "c.yml", "modules:\n  default:\n    helo_name: probe.test\n    timeout: 3s\n")
	for _, tc := range []struct {
		timeout  string
		wantCode int
		wantErr  string
	}{
		{"-1s", exitUsage, `--timeout -1s: want a positive duration`},
		{"0s", exitUsage, `--timeout 0s: want a positive duration`},
		{"-100ms", exitUsage, `--timeout -100ms: want a positive duration`},
		{"2s", exitOK, ""},
	} {
		t.Run(tc.timeout, func(t *testing.T) {
			code, out, errOut := runCLI("probe", ok.Addr, "--config.file="+conf, "--timeout="+tc.timeout)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)\nstdout:\n%s", code, tc.wantCode, errOut, tc.wantErr, out)
			}
			if tc.wantCode == exitUsage && strings.Contains(out, "C: EHLO") {
				t.Errorf("probed despite the usage error:\n%s", out)
			}
		})
	}
}
