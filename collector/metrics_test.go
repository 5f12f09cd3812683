package collector

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func reply(code int, lines ...string) *smtp.Reply {
	r, err := smtp.ReadReply(smtp.NewReader(bytes.NewReader(replyBytes(code, lines))), nil)
	if err != nil {
		panic(err)
	}
	return r
}

func replyBytes(code int, lines []string) []byte {
	var b bytes.Buffer
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString(strconv.Itoa(code) + sep + l + "\r\n")
	}
	return b.Bytes()
}

const ms = time.Millisecond

// fixedResult is a probe that went resolve, connect, banner, ehlo and then
// the given phases.
func fixedResult(more ...smtp.PhaseResult) *smtp.Result {
	r := &smtp.Result{
		Host: "mx.example.org", Port: 25, Addr: netip.MustParseAddrPort("192.0.2.25:25"), IPProtocol: 4,
		DNSDuration: 2 * ms, Duration: 50 * ms,
		Phases: []smtp.PhaseResult{
			{Phase: smtp.PhaseResolve, Duration: 2 * ms},
			{Phase: smtp.PhaseConnect, Duration: 3 * ms},
			{Phase: smtp.PhaseBanner, Duration: 10 * ms, Reply: reply(220, "mx.example.org ESMTP")},
			{Phase: smtp.PhaseEHLO, Duration: 4 * ms, Reply: reply(250, "mx.example.org", "PIPELINING", "SIZE 10240000", "STARTTLS", "8BITMIME")},
		},
		Extensions: map[string]string{"PIPELINING": "", "SIZE": "10240000", "STARTTLS": "", "8BITMIME": ""},
	}
	r.Phases = append(r.Phases, more...)
	return r
}

func failWith(r *smtp.Result, phase smtp.Phase, reason smtp.Reason, rep *smtp.Reply) *smtp.Result {
	r.Err = &smtp.Error{Phase: phase, Reason: reason, Reply: rep, Err: errors.New("test")}
	return r
}

func goldenCases() map[string]*smtp.Result {
	quit := smtp.PhaseResult{Phase: smtp.PhaseQuit, Duration: 1 * ms, Reply: reply(221, "2.0.0 Bye")}
	tlsOK := fixedResult(
		smtp.PhaseResult{Phase: smtp.PhaseStartTLS, Duration: 20 * ms, Reply: reply(220, "2.0.0 Ready to start TLS")},
		smtp.PhaseResult{Phase: smtp.PhaseEHLO, Duration: 3 * ms, Reply: reply(250, "mx.example.org", "SIZE 20480000", "AUTH PLAIN LOGIN")},
		quit)
	tlsOK.Extensions = map[string]string{"SIZE": "20480000", "AUTH": "PLAIN LOGIN"}
	tlsOK.TLS = &smtp.TLSState{Version: tls.VersionTLS13, HandshakeComplete: true, Verified: true,
		PeerCertificates: []*x509.Certificate{{NotAfter: time.Unix(1900000000, 0)}, {NotAfter: time.Unix(2000000000, 0)}}}

	noReply := func(phase smtp.Phase) *smtp.Result {
		r := fixedResult()
		r.Phases = r.Phases[:2]
		r.Extensions = nil
		if phase == smtp.PhaseBanner {
			r.Phases = append(r.Phases, smtp.PhaseResult{Phase: smtp.PhaseBanner, Duration: 500 * ms})
		}
		return r
	}
	resolveFail := &smtp.Result{Host: "nx.example.org", Port: 25, DNSDuration: 5 * ms, Duration: 5 * ms,
		Phases: []smtp.PhaseResult{{Phase: smtp.PhaseResolve, Duration: 5 * ms}}}
	connectFail := noReply("")
	connectFail.Phases = connectFail.Phases[:2]
	tlsFail := noReply("")
	tlsFail.Phases = append(tlsFail.Phases, smtp.PhaseResult{Phase: smtp.PhaseTLS, Duration: 7 * ms})
	tlsFail.TLS = &smtp.TLSState{Version: tls.VersionTLS12, PeerCertificates: []*x509.Certificate{{NotAfter: time.Unix(1600000000, 0)}}}

	return map[string]*smtp.Result{
		"success_starttls": tlsOK,
		"success_helo_fallback": func() *smtp.Result {
			r := fixedResult()
			r.Phases[3].Reply = reply(502, "5.5.2 Error: command not recognized")
			r.Phases = append(r.Phases, smtp.PhaseResult{Phase: smtp.PhaseEHLO, Duration: 1 * ms, Reply: reply(250, "mx.example.org")}, quit)
			r.Extensions = nil
			return r
		}(),
		"fail_resolve":  failWith(resolveFail, smtp.PhaseResolve, smtp.ReasonResolve, nil),
		"fail_connect":  failWith(connectFail, smtp.PhaseConnect, smtp.ReasonConnect, nil),
		"fail_timeout":  failWith(noReply(smtp.PhaseBanner), smtp.PhaseBanner, smtp.ReasonTimeout, nil),
		"fail_tls":      failWith(tlsFail, smtp.PhaseTLS, smtp.ReasonTLS, nil),
		"fail_closed":   failWith(fixedResult(smtp.PhaseResult{Phase: smtp.PhaseMail, Duration: 1 * ms}), smtp.PhaseMail, smtp.ReasonClosed, nil),
		"fail_protocol": failWith(noReply(smtp.PhaseBanner), smtp.PhaseBanner, smtp.ReasonProtocol, nil),
		"fail_reply_4xx": func() *smtp.Result {
			r := noReply("")
			busy := reply(421, "#4.4.5 Too many connections from your host")
			r.Phases = append(r.Phases, smtp.PhaseResult{Phase: smtp.PhaseBanner, Duration: 1 * ms, Reply: busy}, quit)
			return failWith(r, smtp.PhaseBanner, smtp.Reason4xx, busy)
		}(),
		"fail_reply_5xx": func() *smtp.Result {
			rej := reply(550, "5.1.1 <nobody@example.org>: Recipient address rejected")
			r := fixedResult(
				smtp.PhaseResult{Phase: smtp.PhaseMail, Duration: 1 * ms, Reply: reply(250, "2.1.0 Ok")},
				smtp.PhaseResult{Phase: smtp.PhaseRcpt, Duration: 1 * ms, Reply: reply(250, "2.1.5 Ok")},
				smtp.PhaseResult{Phase: smtp.PhaseRcpt, Duration: 2 * ms, Reply: rej}, quit)
			return failWith(r, smtp.PhaseRcpt, smtp.Reason5xx, rej)
		}(),
		"fail_unsupported": failWith(fixedResult(quit), smtp.PhaseStartTLS, smtp.ReasonUnsupported, nil),
		"fail_expectation": func() *smtp.Result {
			ok := reply(250, "2.1.5 Ok")
			r := fixedResult(
				smtp.PhaseResult{Phase: smtp.PhaseMail, Duration: 1 * ms, Reply: reply(250, "2.1.0 Ok")},
				smtp.PhaseResult{Phase: smtp.PhaseRcpt, Duration: 1 * ms, Reply: ok}, quit)
			return failWith(r, smtp.PhaseRcpt, smtp.ReasonExpectation, ok)
		}(),
	}
}

// TestGoldenExposition compares the /probe metrics of fixed results with the
// golden files in testdata/golden (go test -run Golden -args -update
// rewrites them).
func TestGoldenExposition(t *testing.T) {
	for name, res := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			o := newOutcome(res)
			o.count(NewReplyCounters(10), "default", "mx.example.org:25")
			checkGolden(t, name, []exposed{{o: o}})
		})
	}
}

// TestGoldenStaticAndMX covers the label layouts of /metrics (module and
// target) and of mx_lookup (mx and preference).
func TestGoldenStaticAndMX(t *testing.T) {
	cases := goldenCases()
	o := newOutcome(cases["fail_reply_5xx"])
	counters := NewReplyCounters(10)
	o.count(counters, "rcpt", "mx.example.org:25")
	o.count(counters, "rcpt", "mx.example.org:25") // counters add up across scrapes
	static := []labelPair{{"module", "rcpt"}, {"target", "mx.example.org:25"}}
	checkGolden(t, "static_reply_5xx", []exposed{{o: o, labels: static}})

	mx := &smtp.MXResult{Domain: "example.org", LookupDuration: 3 * ms, Duration: 60 * ms, Found: 2, Hosts: []smtp.MXHost{
		{Name: "mx1.example.org", Preference: 10, Result: cases["success_starttls"]},
		{Name: "mx2.example.org", Preference: 20, Result: cases["fail_reply_4xx"]},
	}}
	mo := newMXOutcome(mx, string(smtp.MXSuccessPrimary))
	mo.count(NewReplyCounters(10), "mx", "example.org")
	checkGolden(t, "mx_primary", []exposed{{o: mo, labels: []labelPair{{"module", "mx"}, {"target", "example.org"}}}})

	null := newMXOutcome(&smtp.MXResult{Domain: "example.net", LookupDuration: 3 * ms, Duration: 3 * ms,
		Err: &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonNullMX}}, string(smtp.MXSuccessAll))
	checkGolden(t, "mx_null", []exposed{{o: null}})

	// Several targets in one exposition: each family is written once.
	var both bytes.Buffer
	if err := writeProbeMetrics(&both, []exposed{{o: o, labels: static}, {o: mo, labels: []labelPair{{"module", "rcpt"}, {"target", "example.org"}}}}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(both.String(), "# TYPE probe_success gauge\n"); n != 1 {
		t.Errorf("probe_success has %d TYPE lines", n)
	}
	if _, err := parseExposition(both.Bytes()); err != nil {
		t.Errorf("two targets' exposition does not parse: %v", err)
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

func checkGolden(t *testing.T, name string, items []exposed) {
	t.Helper()
	var b bytes.Buffer
	if err := writeProbeMetrics(&b, items); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", name+".prom")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "# TYPE ") && (i+1 == len(lines) || strings.HasPrefix(lines[i+1], "#")) {
			t.Errorf("%s: family without samples: %s", name, l)
		}
	}
	g := textGatherer(b.Bytes())
	if err := testutil.GatherAndCompare(g, f); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(g); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
