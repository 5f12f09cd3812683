package collector

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
	if _, err := smtptest.StartOn(t, smtptest.Busy, "[::1]:"+port); err != nil {
		t.Skipf("no IPv6 loopback for the second exchanger: %v", err)
	}
	dnsSrv := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"example.test. MX":       {"10 mx1.example.test.", "20 mx2.example.test."},
		"mx1.example.test. A":    {"127.0.0.1"},
		"mx2.example.test. AAAA": {"::1"},
		"null.test. MX":          {"0 ."},
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
`
	e, reg := newTestExporter(t, conf, ExporterOptions{})
	code, body := get(t, e.ProbeHandler(), probeURL("example.test", "mx_any"), nil)
	for _, want := range []string{
		"probe_success 1", "probe_smtp_mx_hosts 2",
		`probe_smtp_last_reply_code{mx="mx1.example.test",preference="10"} 221`,
		`probe_smtp_last_reply_code{mx="mx2.example.test",preference="20"} 421`,
		`probe_smtp_failure_info{mx="mx2.example.test",phase="banner",preference="20",reason="reply_4xx"} 1`,
		`probe_smtp_replies_total{class="4xx",mx="mx2.example.test",preference="20"} 1`,
		`probe_ip_protocol{mx="mx2.example.test",preference="20"} 6`,
	} {
		if code != 200 || !strings.Contains(body, want+"\n") {
			t.Errorf("/probe (mx_any) lacks %q:\n%s", want, body)
		}
	}
	_, body = get(t, e.ProbeHandler(), probeURL("null.test", "mx_any"), nil)
	if !strings.Contains(body, `probe_smtp_failure_info{mx="",phase="resolve",preference="",reason="null_mx"} 1`) || !strings.Contains(body, "probe_success 0\n") {
		t.Errorf("null MX:\n%s", body)
	}
	if code, body := get(t, e.ProbeHandler(), probeURL("example.test:25", "mx_any"), nil); code != 400 || !strings.Contains(body, "an mx_lookup module takes a domain name") {
		t.Errorf("a port with mx_lookup: %d %q", code, body)
	}
	_, body = get(t, e.MetricsHandler(reg), "/metrics", nil)
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
