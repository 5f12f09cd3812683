package integration

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// throughExporter runs the lab's cases as users do: the exporter binary
// with modules that name the lab's resolver, /probe, and the metrics of
// issue 12 (DANE, MTA-STS, TLS-RPT, addresses: all).
func (l *daneLab) throughExporter(t *testing.T) {
	dir := t.TempDir()
	ee, _, _ := l.eePKI.WriteFiles(t, dir)
	plDir := filepath.Join(dir, "plain")
	policyDir := filepath.Join(dir, "policy")
	deadDir := filepath.Join(dir, "dead")
	for _, d := range []string{plDir, policyDir, deadDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pl, _, _ := l.plPKI.WriteFiles(t, plDir)
	policyCA, _, _ := l.policyPKI.WriteFiles(t, policyDir)
	deadCA, _, _ := l.deadPKI.WriteFiles(t, deadDir)
	mxModule := func(port uint16, ca string) string {
		return fmt.Sprintf(`{helo_name: probe.test, resolver: "%s", mx_lookup: true, mx_max_hosts: 1, port: %d, tls: starttls,
      tls_config: {ca_file: %s}, dane: true, mta_sts: true, mta_sts_tls_config: {ca_file: %s}}`, l.dns.Resolver, port, ca, policyCA)
	}
	conf := fmt.Sprintf(`modules:
  dane: {helo_name: probe.test, resolver: "%[1]s", tls: starttls, dane: true}
  dane_unsigned: {helo_name: probe.test, resolver: "%[1]s", tls: starttls, dane: true, tls_config: {ca_file: %[2]s}}
  dane_all: {helo_name: probe.test, resolver: "%[1]s", tls: starttls, dane: true, addresses: all}
  sts_dane: %[3]s
  sts_plain: %[4]s
  dane_dead: {helo_name: probe.test, resolver: "%[1]s", tls: starttls, dane: true, tls_config: {ca_file: %[5]s}}
  dane_rcpt: {helo_name: probe.test, resolver: "%[1]s", mx_lookup: true, port: %[6]d, tls: starttls, dane: true}
`, l.dns.Resolver, pl, mxModule(l.ee.Port, ee), mxModule(l.plain.Port, pl), deadCA, l.rcpt.Port)
	path := filepath.Join(dir, "lab.yml")
	write(t, path, conf)
	e := testenv.StartExporter(t, binary, "--config.file="+path)
	probe := func(t *testing.T, module, target string) string {
		t.Helper()
		code, body := e.Get(t, "/probe?"+url.Values{"module": {module}, "target": {target}}.Encode())
		if code != 200 {
			t.Fatalf("/probe: %d %s", code, body)
		}
		return body
	}
	for _, tc := range []struct {
		name, module, target string
		want, absent         []string
	}{
		{"DANE-EE verifies", "dane", hostPort("mx-ee.dane.test", l.ee), []string{"probe_success 1", "probe_smtp_dane_verified 1", "probe_smtp_dane_authenticated 1", "probe_smtp_dane_tlsa_records 1"}, nil},
		{"DANE-TA verifies", "dane", hostPort("mx-ta.dane.test", l.ta), []string{"probe_success 1", "probe_smtp_dane_verified 1"}, nil},
		{"a mismatch fails with reason dane", "dane", hostPort("mx-bad.dane.test", l.bad), []string{"probe_success 0", "probe_smtp_dane_verified 0",
			`probe_smtp_failure_info{phase="starttls",reason="dane"} 1`}, nil},
		{"unsigned zone: not authenticated, no failure", "dane_unsigned", hostPort("mx.plain.test", l.plain), []string{"probe_success 1", "probe_smtp_dane_authenticated 0"},
			[]string{"probe_smtp_dane_verified"}},
		{"enforce policy listing the MX passes", "sts_dane", "dane.test", []string{"probe_success 1",
			`probe_smtp_mta_sts_policy_info{id="lab1",mode="enforce"} 1`, "probe_smtp_mta_sts_policy_max_age_seconds 86400",
			`probe_smtp_mta_sts_mx_matched{mx="mx-ee.dane.test",preference="10"} 1`, "probe_smtp_tls_rpt_record 1",
			`probe_smtp_dane_verified{mx="mx-ee.dane.test",preference="10"} 1`, "probe_smtp_mx_lookup_authenticated 1"}, nil},
		{"enforce policy not listing the MX fails with reason mta_sts", "sts_plain", "plain.test", []string{"probe_success 0",
			`probe_smtp_mta_sts_mx_matched{mx="mx.plain.test",preference="10"} 0`,
			`probe_smtp_failure_info{mx="mx.plain.test",phase="mta_sts",preference="10",reason="mta_sts"} 1`,
			"probe_smtp_tls_rpt_record 0", "probe_smtp_mx_lookup_authenticated 0"}, nil},
		// Issue 18: an unsigned host whose _tcp label's nameserver is dead
		// is not asked for TLSA records; a leaf naming only the recipient
		// domain verifies under DANE-TA when reached by that domain's MX.
		{"a dead nameserver for an unsigned host's TLSA names: DANE does not apply", "dane_dead", hostPort("mx-dead.plain.test", l.dead),
			[]string{"probe_success 1", "probe_smtp_dane_authenticated 0", "probe_smtp_dane_tlsa_records 0"}, []string{"probe_smtp_dane_verified"}},
		{"DANE-TA with the recipient domain's name, by MX", "dane_rcpt", "rcpt.dane.test", []string{"probe_success 1",
			`probe_smtp_dane_verified{mx="mx-rcpt.dane.test",preference="10"} 1`, "probe_smtp_mx_lookup_authenticated 1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := probe(t, tc.module, tc.target)
			for _, w := range tc.want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("lacks %q:\n%s", w, body)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(body, a) {
					t.Errorf("has %q:\n%s", a, body)
				}
			}
		})
	}
	t.Run("addresses all: IPv4 and IPv6 of one host apart", func(t *testing.T) {
		testenv.Require(t, l.dual6 != nil, "no IPv6 loopback ([::1]) with a port free on both loopbacks")
		body := probe(t, "dane_all", fmt.Sprintf("mx-dual.dane.test:%d", l.dual4.Port))
		for _, w := range []string{"probe_success 1", `probe_smtp_dane_verified{address="127.0.0.1"} 1`, `probe_smtp_dane_verified{address="::1"} 1`,
			`probe_ip_protocol{address="127.0.0.1"} 4`, `probe_ip_protocol{address="::1"} 6`} {
			if !strings.Contains(body, w+"\n") {
				t.Errorf("lacks %q:\n%s", w, body)
			}
		}
	})
}

// hostPort is name:port of a lab server: the name, for DANE looks up the
// TLSA records of the name.
func hostPort(name string, s *starttlsServer) string { return fmt.Sprintf("%s:%d", name, s.Port) }
