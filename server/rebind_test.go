package server

import (
	"net"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestProbePolicyAfterResolution: names are judged by the addresses they
// resolve to, every one of them, before anything is dialled.
func TestProbePolicyAfterResolution(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, port, _ := net.SplitHostPort(srv.Addr)
	dnsSrv := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"rebind.allowed.test. A":    {"127.0.0.1"},
		"mixed.allowed.test. A":     {"127.0.0.1"},
		"mixed.allowed.test. AAAA":  {"::1"},
		"mapped.allowed.test. AAAA": {"::ffff:127.0.0.1"},
		"ok.allowed.test. AAAA":     {"::1"},
	}})
	conf := `
modules:
  default:
    helo_name: probe.test
    port: ` + port + `
    ip_protocol: ip6
    resolver: ` + dnsSrv.Addr + `
probe_policy:
  allow: ["*.allowed.test"]
  deny: [127.0.0.0/8]
`
	s, _ := newTestServer(t, conf, Options{})
	for _, tc := range []struct{ target, want string }{
		{"rebind.allowed.test", "target rebind.allowed.test is refused by probe_policy.deny[0] \"127.0.0.0/8\"\n"},
		{"mixed.allowed.test", "target mixed.allowed.test is refused by probe_policy.deny[0] \"127.0.0.0/8\"\n"},
		{"mapped.allowed.test", "target mapped.allowed.test is refused by probe_policy.deny[0] \"127.0.0.0/8\"\n"},
		{"127.0.0.1", "target 127.0.0.1 is refused by probe_policy.deny[0] \"127.0.0.0/8\"\n"},
		{"[::ffff:127.0.0.1]", "target ::ffff:127.0.0.1 is refused by probe_policy.deny[0] \"127.0.0.0/8\"\n"},
	} {
		code, body := get(t, s.Probe(), probeURL(tc.target, ""), nil)
		if code != 403 || body != tc.want {
			t.Errorf("%s: %d %q, want 403 %q", tc.target, code, body, tc.want)
		}
	}
	if n := srv.Accepted.Load(); n != 0 {
		t.Errorf("refused targets were dialled %d times", n)
	}
	// An allowed name with only allowed addresses is probed (over ::1, where
	// nothing listens on this port: the point is that it is dialled).
	code, body := get(t, s.Probe(), probeURL("ok.allowed.test", ""), nil)
	if code != 200 || !strings.Contains(body, "probe_ip_protocol 6\n") {
		t.Errorf("allowed target: %d\n%s", code, body)
	}
}
