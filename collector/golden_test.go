package collector

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

// goldenModules are the modules of the golden probes; %RESOLVER% is the
// test's DNS server.
const goldenModules = `
modules:
  default: {helo_name: probe.test, timeout: 2s}
  fast: {helo_name: probe.test, timeout: 300ms}
  starttls:
    helo_name: probe.test
    tls: starttls
    tls_config: {insecure_skip_verify: true}
  starttls_verify: {helo_name: probe.test, tls: starttls}
  smtps:
    helo_name: probe.test
    tls: implicit
  rcpt: {helo_name: probe.test, mail_from: probe@example.org, rcpt_to: [nobody@example.org]}
  relay: {helo_name: probe.test, mail_from: probe@example.org, rcpt_to: [relay@example.net], expect_reply: {rcpt: 5xx}}
  named: {helo_name: probe.test, resolver: "%RESOLVER%"}
  mx: {helo_name: probe.test, mx_lookup: true, mx_success: primary, resolver: "%RESOLVER%", port: %MXPORT%}
`

// goldenProbe is one real probe whose exposition is compared byte for byte.
type goldenProbe struct {
	module, target string
	static         bool
	times          int // probes counted before the exposition (default 1)
}

// TestGoldenExposition runs real probes against fake servers and compares
// their exposition with testdata/golden (go test ./collector -run Golden
// -args -update rewrites them). Only what varies from run to run is fixed
// before writing: durations, and the port in a static target's label.
func TestGoldenExposition(t *testing.T) {
	// A certificate that expired at a fixed time (2023-11-14): the earliest
	// expiry of the chain is the leaf's, whatever day the test runs.
	pki := testpki.New(t, time.Unix(1600000000, 0), time.Unix(1700000000, 0), "mx.example.org")
	tlsOK := scripted{banner: "220 mx.example.org ESMTP",
		replies:   map[string]string{"EHLO": "250-mx.example.org\n250-PIPELINING\n250-SIZE 10240000\n250-STARTTLS\n250-XUNREGISTERED\n250 8BITMIME"},
		afterTLS:  map[string]string{"EHLO": "250-mx.example.org\n250-SIZE 20480000\n250 AUTH PLAIN LOGIN"},
		tlsConfig: pki.Server}.start(t, "127.0.0.1:0")
	heloOnly := scripted{banner: "220 mx.example.org ESMTP",
		replies: map[string]string{"EHLO": "502 5.5.2 Error: command not recognized", "HELO": "250 mx.example.org"}}.start(t, "127.0.0.1:0")
	// Two exchangers on one port: 127.0.0.1 answers, 127.0.0.2 is busy.
	mx1 := scripted{banner: "220 mx1.example.test ESMTP", replies: map[string]string{"EHLO": "250-mx1.example.test\n250 SIZE 0"}}.start(t, "127.0.0.1:0")
	_, mxPort, _ := net.SplitHostPort(mx1)
	scripted{banner: "421 #4.4.5 Too many connections from your host"}.start(t, "127.0.0.2:"+mxPort)
	dns := dnstest.Start(t, dnstest.Zone{
		Records: map[string][]string{
			"example.test. MX":      {"10 mx1.example.test.", "20 mx2.example.test."},
			"mx1.example.test. A":   {"127.0.0.1"},
			"mx2.example.test. A":   {"127.0.0.2"},
			"null.example.test. MX": {"0 ."},
		},
		NXDomain: []string{"nx.example.test."},
	})
	closed := closedPort(t)
	set := buildSet(t, strings.NewReplacer("%RESOLVER%", dns.Addr, "%MXPORT%", mxPort).Replace(goldenModules))

	cases := map[string]goldenProbe{
		"success_starttls":      {module: "starttls", target: tlsOK},
		"success_helo_fallback": {module: "default", target: heloOnly},
		"fail_resolve":          {module: "named", target: "nx.example.test"},
		"fail_connect":          {module: "default", target: closed},
		"fail_timeout":          {module: "fast", target: smtptest.Start(t, smtptest.Tarpit).Addr},
		"fail_tls":              {module: "smtps", target: smtptest.Start(t, smtptest.NotTLS).Addr},
		"fail_tls_verify":       {module: "starttls_verify", target: tlsOK},
		"fail_closed":           {module: "default", target: smtptest.Start(t, smtptest.Reset).Addr},
		"fail_protocol":         {module: "default", target: smtptest.Start(t, smtptest.Endless).Addr},
		"fail_reply_4xx":        {module: "default", target: smtptest.Start(t, smtptest.Busy).Addr},
		"fail_reply_5xx":        {module: "rcpt", target: smtptest.Start(t, smtptest.RejectRcpt).Addr},
		"fail_unsupported":      {module: "starttls", target: smtptest.Start(t, smtptest.OK).Addr},
		"fail_expectation":      {module: "relay", target: smtptest.Start(t, smtptest.OK).Addr},
		"static_reply_5xx":      {module: "rcpt", target: smtptest.Start(t, smtptest.RejectRcpt).Addr, static: true, times: 2},
		"mx_primary":            {module: "mx", target: "example.test", static: true},
		"mx_null":               {module: "mx", target: "null.example.test"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tgt, err := set.Plans[c.module].ParseTarget(c.target)
			if err != nil {
				t.Fatal(err)
			}
			counters := NewReplyCounters(10)
			var o *probe.Outcome
			var counts []ReplyCounts
			for range max(c.times, 1) {
				ctx, cancel := context.WithTimeout(context.Background(), tgt.Plan.Timeout)
				o, err = probe.Run(ctx, tgt, probe.Hooks{})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				counts = counters.AddOutcome(o) // counters add up across probes
			}
			fixTimes(o)
			if c.static {
				o.Target.Raw = "mx.example.org:25" // the fake server's port varies
			}
			checkGolden(t, name, []Item{NewItem(o, counts, c.static)})
		})
	}
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fixTimes replaces what varies between runs by fixed values: the probe's
// 50ms, name resolution's 2ms (when there was any), 1ms per phase, and the
// bytes of the certificates (made anew by each run, with new keys), whose
// fingerprint probe_ssl_last_chain_info shows.
func fixTimes(o *probe.Outcome) {
	for _, h := range o.Hosts {
		if t := h.Result.TLS; t != nil {
			for i, c := range t.PeerCertificates {
				fixed := *c
				fixed.Raw = []byte(fmt.Sprintf("certificate %d of %s", i, c.Subject))
				t.PeerCertificates[i] = &fixed
			}
		}
	}
	o.Duration = 50 * time.Millisecond
	if o.DNS > 0 {
		o.DNS = 2 * time.Millisecond
	}
	for i := range o.Hosts {
		for j := range o.Hosts[i].Phases {
			o.Hosts[i].Phases[j].Duration = time.Millisecond
		}
	}
}

// parseExposition reads text exposition back into metric families.
func parseExposition(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

// textGatherer gathers what a text exposition holds; prometheus.Gatherers
// around it sorts and checks it as a registry would.
func textGatherer(b []byte) prometheus.Gatherer {
	return prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := parseExposition(b)
		if err != nil {
			return nil, err
		}
		out := make([]*dto.MetricFamily, 0, len(mfs))
		for _, mf := range mfs {
			out = append(out, mf)
		}
		return out, nil
	})}
}

func checkGolden(t *testing.T, name string, items []Item) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteProbeMetrics(&b, items); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", name+".prom")
	if *testenv.Update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("%s differs from %s:\n%s", name, path, b.String())
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "# TYPE ") && (i+1 == len(lines) || strings.HasPrefix(lines[i+1], "#")) {
			t.Errorf("%s: family without samples: %s", name, l)
		}
	}
	// What a registry would write from the same samples is the same text.
	g := textGatherer(b.Bytes())
	if err := testutil.GatherAndCompare(g, bytes.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(g); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
