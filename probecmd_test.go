package main

import (
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

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
