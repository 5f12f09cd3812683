package server

import (
	"net"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestAddressesAll: with addresses: all every address of the target, or of
// each MX host, is probed and reported with its address label; the success
// mode decides over all of them.
func TestAddressesAll(t *testing.T) {
	good := smtptest.Start(t, smtptest.OK)
	_, port, _ := net.SplitHostPort(good.Addr)
	busy, err := smtptest.StartOn(t, smtptest.Busy, "127.0.0.2:"+port)
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"multi.test. A":   {"127.0.0.1", "127.0.0.2"},
		"domain.test. MX": {"10 multi.test."},
	}})
	conf := `
modules:
  all:
    helo_name: probe.test
    port: ` + port + `
    resolver: ` + dns.Addr + `
    addresses: all
  any:
    helo_name: probe.test
    port: ` + port + `
    resolver: ` + dns.Addr + `
    addresses: all
    mx_success: any
  mx_all:
    helo_name: probe.test
    port: ` + port + `
    resolver: ` + dns.Addr + `
    addresses: all
    mx_lookup: true
probe_policy:
  deny: [127.0.0.2/32]
`
	s, _ := newTestServer(t, conf, Options{})
	// One address of the host is denied: nothing is dialled at all.
	if code, body := get(t, s.Probe(), probeURL("multi.test", "all"), nil); code != 403 {
		t.Errorf("a host with a denied address: %d %q", code, body)
	}
	if n := good.Accepted.Load() + busy.Accepted.Load(); n != 0 {
		t.Fatalf("%d connections for a refused probe", n)
	}
	reload(t, s, strings.Replace(conf, "deny: [127.0.0.2/32]", "deny: []", 1))
	for _, tc := range []struct {
		module string
		want   []string
	}{
		{"all", []string{"probe_success 0",
			`probe_smtp_last_reply_code{address="127.0.0.1"} 221`,
			`probe_smtp_last_reply_code{address="127.0.0.2"} 421`,
			`probe_smtp_failure_info{address="127.0.0.2",phase="banner",reason="reply_4xx"} 1`,
			`probe_ip_protocol{address="127.0.0.1"} 4`}},
		{"any", []string{"probe_success 1", `probe_smtp_failure_info{address="127.0.0.2",phase="banner",reason="reply_4xx"} 1`}},
		{"mx_all", []string{"probe_success 0",
			`probe_smtp_last_reply_code{address="127.0.0.1",mx="multi.test",preference="10"} 221`,
			`probe_smtp_last_reply_code{address="127.0.0.2",mx="multi.test",preference="10"} 421`}},
	} {
		target := "multi.test"
		if tc.module == "mx_all" {
			target = "domain.test"
		}
		code, body := get(t, s.Probe(), probeURL(target, tc.module), nil)
		for _, w := range tc.want {
			if code != 200 || !strings.Contains(body, w+"\n") {
				t.Errorf("%s: lacks %q:\n%s", tc.module, w, body)
			}
		}
	}
	// Each address has its own reply counters.
	_, body := get(t, s.Probe(), probeURL("multi.test", "all"), nil)
	for _, w := range []string{`probe_smtp_replies_total{address="127.0.0.1",class="2xx"} 6`, `probe_smtp_replies_total{address="127.0.0.2",class="4xx"} 2`} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("lacks %q:\n%s", w, body)
		}
	}
}
