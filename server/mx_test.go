package server

import (
	"net"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestProbeHandlerMX: an mx_lookup module probes every exchanger; each
// series carries mx and preference.
func TestProbeHandlerMX(t *testing.T) {
	good := smtptest.Start(t, smtptest.OK)
	_, port, _ := net.SplitHostPort(good.Addr)
	busy, err := smtptest.StartOn(t, smtptest.Busy, "127.0.0.2:"+port)
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"example.test. MX":    {"10 mx1.example.test.", "20 mx2.example.test."},
		"upper.test. MX":      {"10 MX1.Example.Test."},
		"mx1.example.test. A": {"127.0.0.1"},
		"mx2.example.test. A": {"127.0.0.2"},
		"denied.test. MX":     {"10 mx1.example.test.", "20 mx2.example.test."},
		"null.test. MX":       {"0 ."},
	}})
	conf := `
modules:
  mx_any:
    helo_name: probe.test
    port: ` + port + `
    mx_lookup: true
    mx_success: any
    resolver: ` + dnsSrv.Addr + `
  mx_all:
    helo_name: probe.test
    port: ` + port + `
    mx_lookup: true
    resolver: ` + dnsSrv.Addr + `
targets:
  - target: example.test
    module: mx_all
probe_policy:
  deny: [127.0.0.2/32]
`
	s, reg := newTestServer(t, conf, Options{})
	// An exchanger of the domain is denied: 403, and NO exchanger is
	// dialled, not even the allowed one.
	code, body := get(t, s.Probe(), probeURL("denied.test", "mx_any"), nil)
	if code != 403 || body != "target mx2.example.test is refused by probe_policy.deny[0] \"127.0.0.2/32\"\n" {
		t.Errorf("MX with a denied exchanger: %d %q", code, body)
	}
	if n := good.Accepted.Load() + busy.Accepted.Load(); n != 0 {
		t.Errorf("an MX probe refused by policy dialled %d connections", n)
	}
	// The static targets are not subject to the policy.
	reload(t, s, strings.Replace(conf, "deny: [127.0.0.2/32]", "deny: []", 1))
	code, body = get(t, s.Probe(), probeURL("example.test", "mx_any"), nil)
	for _, want := range []string{
		"probe_success 1", "probe_smtp_mx_hosts 2",
		`probe_smtp_last_reply_code{mx="mx1.example.test",preference="10"} 221`,
		`probe_smtp_last_reply_code{mx="mx2.example.test",preference="20"} 421`,
		`probe_smtp_failure_info{mx="mx2.example.test",phase="banner",preference="20",reason="reply_4xx"} 1`,
		`probe_smtp_replies_total{class="4xx",mx="mx2.example.test",preference="20"} 1`,
		`probe_ip_protocol{mx="mx2.example.test",preference="20"} 4`,
	} {
		if code != 200 || !strings.Contains(body, want+"\n") {
			t.Errorf("/probe (mx_any) lacks %q:\n%s", want, body)
		}
	}
	// Spellings of one domain and of one exchanger share their counters.
	get(t, s.Probe(), probeURL("Upper.test.", "mx_any"), nil)
	_, body = get(t, s.Probe(), probeURL("upper.test", "mx_any"), nil)
	if want := `probe_smtp_replies_total{class="2xx",mx="mx1.example.test",preference="10"} 6`; !strings.Contains(body, want+"\n") {
		t.Errorf("MX counters not normalised: lacks %q:\n%s", want, body)
	}
	_, body = get(t, s.Probe(), probeURL("null.test", "mx_any"), nil)
	for _, want := range []string{`probe_smtp_failure_info{mx="",phase="resolve",preference="",reason="null_mx"} 1`, "probe_success 0",
		`probe_smtp_replies_total{class="5xx",mx="",preference=""} 0`, `probe_smtp_last_reply_code{mx="",preference=""} 0`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("null MX lacks %q:\n%s", want, body)
		}
	}
	if code, body := get(t, s.Probe(), probeURL("example.test:25", "mx_any"), nil); code != 400 || !strings.Contains(body, "an mx_lookup module takes a domain name") {
		t.Errorf("a port with mx_lookup: %d %q", code, body)
	}
	_, body = get(t, s.Metrics(reg), "/metrics", nil)
	for _, want := range []string{
		`probe_success{module="mx_all",target="example.test"} 0`,
		`probe_smtp_mx_hosts{module="mx_all",target="example.test"} 2`,
		`probe_smtp_last_reply_code{module="mx_all",mx="mx1.example.test",preference="10",target="example.test"} 221`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
