package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/collector"
	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"

	// Every test binary accepts -update (go test ./... -run Golden -args -update).
	_ "github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

const testModules = `
modules:
  default:
    helo_name: probe.test
    timeout: 5s
  rcpt:
    helo_name: probe.test
    mail_from: probe@example.org
    rcpt_to: [nobody@example.org]
  relay:
    helo_name: probe.test
    mail_from: probe@example.org
    rcpt_to: [nobody@example.org]
    expect_reply: {rcpt: 5xx}
  secret:
    helo_name: probe.test
    tls: starttls
    auth: {username: monitor, password: sup3r-s3cret}
  secret_local:
    helo_name: probe.test
    tls: starttls
    auth: {username: monitor, password: sup3r-s3cret, targets: [127.0.0.1]}
`

// newTestServer returns a server on the given config text.
func newTestServer(t testing.TB, conf string, o Options) (*Server, *prometheus.Registry) {
	t.Helper()
	c, err := config.Parse([]byte(conf), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sc := config.NewSafeConfig(reg, probe.Build)
	if err := sc.Set(c); err != nil {
		t.Fatal(err)
	}
	o.Config = sc
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 100
	}
	if o.StaticConcurrency == 0 {
		o.StaticConcurrency = 10
	}
	if o.CounterLimit == 0 {
		o.CounterLimit = 100
	}
	o.Logger = log.NewNopLogger()
	return New(o, reg), reg
}

// reload puts conf in place as a reload does.
func reload(t testing.TB, s *Server, conf string) {
	t.Helper()
	c, err := config.Parse([]byte(conf), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.opts.Config.Set(c); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, h http.Handler, target string, header map[string]string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func probeURL(target, module string, extra ...string) string {
	q := url.Values{}
	if target != "" {
		q.Set("target", target)
	}
	if module != "" {
		q.Set("module", module)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return "/probe?" + q.Encode()
}

// TestProbeHandlerRefusals: every refused request gets its status code and a
// one-line reason, and nothing is dialled.
func TestProbeHandlerRefusals(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	conf := testModules + "probe_policy:\n  deny: [\"*.internal.test\", 10.0.0.0/8]\n"
	s, reg := newTestServer(t, conf, Options{})
	tests := []struct {
		name     string
		url      string
		header   map[string]string
		wantCode int
		wantBody string
		reason   string
	}{
		{"missing target", probeURL("", ""), nil, 400, "missing target\n", "bad_request"},
		{"malformed target", probeURL("mx.example.org:99999", ""), nil, 400, "target \"mx.example.org:99999\": port \"99999\" is not a number from 1 to 65535\n", "bad_request"},
		{"numeric ipv4 spelling", probeURL("2130706433", ""), nil, 400, "target \"2130706433\": \"2130706433\" is not an IP address and not a host name (its last label is numeric)\n", "bad_request"},
		{"unknown module", probeURL(srv.Addr, "nope"), nil, 400, "unknown module \"nope\" (the modules are \"default\", \"rcpt\", \"relay\", \"secret\", \"secret_local\")\n", "unknown_module"},
		{"bad timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "soon"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"soon\": want decimal seconds\n", "bad_request"},
		{"NaN timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "NaN"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"NaN\": want decimal seconds\n", "bad_request"},
		{"hex timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "0x1p3"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"0x1p3\": want decimal seconds\n", "bad_request"},
		{"underscore timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "1_0"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"1_0\": want decimal seconds\n", "bad_request"},
		{"Inf timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "+Inf"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"+Inf\": want decimal seconds\n", "bad_request"},
		{"zero timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "0"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"0\": want seconds from 0 to 86400\n", "bad_request"},
		{"denied name", probeURL("mx.internal.test", ""), nil, 403, "target mx.internal.test is refused by probe_policy.deny[0] \"*.internal.test\"\n", "policy"},
		{"denied address", probeURL("10.1.2.3:25", ""), nil, 403, "target 10.1.2.3 is refused by probe_policy.deny[1] \"10.0.0.0/8\"\n", "policy"},
		{"cloud metadata", probeURL("169.254.169.254:80", ""), nil, 403, "target 169.254.169.254 is refused by the built-in deny list (link-local (cloud metadata))\n", "policy"},
		{"mapped metadata", probeURL("[::ffff:169.254.169.254]:80", ""), nil, 403, "target ::ffff:169.254.169.254 is refused by the built-in deny list (link-local (cloud metadata))\n", "policy"},
		{"ipv6 cloud metadata", probeURL("[fd00:ec2::254]:80", ""), nil, 403, "target fd00:ec2::254 is refused by the built-in deny list (AWS metadata (IPv6))\n", "policy"},
		{"alibaba metadata", probeURL("100.100.100.200:80", ""), nil, 403, "target 100.100.100.200 is refused by the built-in deny list (Alibaba Cloud metadata)\n", "policy"},
		{"credentials to an unnamed server", probeURL(srv.Addr, "secret"), nil, 403, "module \"secret\" sends credentials, and target \"" + srv.Addr + "\" is neither one of its static targets nor in its auth.targets\n", "credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(s.refused.WithLabelValues(tc.reason))
			code, body := get(t, s.Probe(), tc.url, tc.header)
			if code != tc.wantCode || body != tc.wantBody {
				t.Errorf("= %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			if got := testutil.ToFloat64(s.refused.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("refused{reason=%q} went from %v to %v", tc.reason, before, got)
			}
		})
	}
	if n := srv.Accepted.Load(); n != 0 {
		t.Errorf("refused requests dialled the server %d times", n)
	}
	if n := s.counters.Len(); n != 0 {
		t.Errorf("refused requests created %d counter series", n)
	}
	_ = reg
}

func TestProbeHandlerSuccessAndCounters(t *testing.T) {
	srv := smtptest.Start(t, smtptest.RejectRcpt)
	s, _ := newTestServer(t, testModules, Options{})
	for i := 1; i <= 2; i++ {
		code, body := get(t, s.Probe(), probeURL(srv.Addr, "default"), nil)
		if code != 200 {
			t.Fatalf("code %d: %s", code, body)
		}
		for _, want := range []string{"probe_success 1", "probe_smtp_last_reply_code 221", `probe_smtp_reply_code{phase="banner"} 220`,
			`probe_smtp_extension_info{extension="PIPELINING"} 1`, "probe_smtp_message_size_limit_bytes 1.048576e+06",
			`probe_smtp_replies_total{class="2xx"} ` + strconv.Itoa(3*i), `probe_smtp_replies_total{class="5xx"} 0`, "probe_ip_protocol 4"} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("probe %d: body lacks %q:\n%s", i, want, body)
			}
		}
	}
	code, body := get(t, s.Probe(), probeURL(srv.Addr, "rcpt"), nil)
	for _, want := range []string{"probe_success 0", "probe_smtp_last_reply_code 550", `probe_smtp_last_enhanced_status_info{code="5.1.1"} 1`,
		`probe_smtp_failure_info{phase="rcpt",reason="reply_5xx"} 1`, `probe_smtp_replies_total{class="5xx"} 1`} {
		if code != 200 || !strings.Contains(body, want+"\n") {
			t.Errorf("rcpt module: %d, body lacks %q:\n%s", code, want, body)
		}
	}
	_, body = get(t, s.Probe(), probeURL(srv.Addr, "relay"), nil)
	if !strings.Contains(body, "probe_success 1\n") || !strings.Contains(body, `probe_smtp_reply_code{phase="rset"} 250`) {
		t.Errorf("open relay check against a refusing server should succeed:\n%s", body)
	}
}

// TestProbeHandlerTimeoutHeader: the probe ends at the scrape timeout less
// the offset, not at the module's 5s.
func TestProbeHandlerTimeoutHeader(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Tarpit)
	s, _ := newTestServer(t, testModules, Options{TimeoutOffset: 0.5})
	start := time.Now()
	code, body := get(t, s.Probe(), probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "1"})
	elapsed := time.Since(start)
	if code != 200 || !strings.Contains(body, `probe_smtp_failure_info{phase="banner",reason="timeout"} 1`) {
		t.Errorf("%d %s", code, body)
	}
	// The module's timeout is 5s: well under it means the header (less the
	// offset) set the deadline. The exact duration is the smtp tests' job.
	if elapsed > 4*time.Second {
		t.Errorf("probe took %s: the 1s scrape timeout was not applied", elapsed)
	}
}

func TestProbeHandlerDebug(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Busy)
	s, _ := newTestServer(t, testModules, Options{})
	code, body := get(t, s.Probe(), probeURL(srv.Addr, "secret_local", "debug", "true"), nil)
	for _, want := range []string{"Probe transcript:", "S: 421 #4.4.5 Too many connections from your host", "C: QUIT",
		"Replies explained:", "banner: 421 4.4.5: temporary failure", "congested", "Probe FAILED",
		"Metrics that would have been returned:", `probe_smtp_last_enhanced_status_info{code="4.4.5"} 1`,
		"Module configuration (secret_local):", "password: <secret>"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "sup3r-s3cret") {
		t.Errorf("debug output leaks the password:\n%s", body)
	}
}

func TestProbeHandlerOverload(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	s, _ := newTestServer(t, testModules, Options{MaxInFlight: 1})
	// Another probe holds the only connection slot.
	if !s.conns.TryAcquire() {
		t.Fatal("no free slot at start")
	}
	code, body := get(t, s.Probe(), probeURL(srv.Addr, ""), nil)
	if code != 503 || body != "the one probe connection slot is taken (--probe.max-in-flight); try again later\n" {
		t.Errorf("= %d %q, want 503", code, body)
	}
	if got := testutil.ToFloat64(s.refused.WithLabelValues("overload")); got != 1 {
		t.Errorf("overload refusals = %v", got)
	}
	if got := slotsTaken(2); got != "all 2 probe connection slots are taken" {
		t.Errorf("slotsTaken(2) = %q", got)
	}
	s.conns.Release()
	if code, body := get(t, s.Probe(), probeURL(srv.Addr, ""), nil); code != 200 || !strings.Contains(body, "probe_success 1\n") {
		t.Errorf("after the slot is freed: %d %q", code, body)
	}
	if n := s.conns.InUse(); n != 0 {
		t.Errorf("%d slots still taken after the probe", n)
	}
	if n := srv.Accepted.Load(); n != 1 {
		t.Errorf("the server was dialled %d times, want once", n)
	}
}

// TestStaticCapacityOfItsOwn: a /probe flood holding every /probe slot does
// not make static targets fail.
func TestStaticCapacityOfItsOwn(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	s, reg := newTestServer(t, testModules+"targets:\n  - target: "+ok.Addr+"\n", Options{MaxInFlight: 2})
	for s.conns.TryAcquire() {
	}
	_, body := get(t, s.Metrics(reg), "/metrics", nil)
	if want := `probe_success{module="default",target="` + ok.Addr + `"} 1`; !strings.Contains(body, want+"\n") {
		t.Errorf("with /probe's slots all taken, /metrics lacks %q:\n%s", want, body)
	}
}

func TestProbeHandlerStaticOnly(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	conf := testModules + "targets:\n  - target: " + srv.Addr + "\n"
	s, _ := newTestServer(t, conf, Options{StaticOnly: true})
	if code, _ := get(t, s.Probe(), probeURL(srv.Addr, ""), nil); code != 200 {
		t.Errorf("listed target: %d", code)
	}
	code, body := get(t, s.Probe(), probeURL(srv.Addr, "rcpt"), nil)
	if code != 403 || !strings.Contains(body, "not in the config's targets") {
		t.Errorf("unlisted module: %d %q", code, body)
	}
}

// TestMetricsStaticTargets: /metrics probes every static target at once; a
// tarpit among them costs that target a timeout, not the scrape.
func TestMetricsStaticTargets(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	busy := smtptest.Start(t, smtptest.Busy)
	tarpit := smtptest.Start(t, smtptest.Tarpit)
	conf := testModules + "targets:\n  - target: " + ok.Addr + "\n  - target: " + busy.Addr + "\n  - target: " + tarpit.Addr + "\n  - target: " + ok.Addr + "\n    module: rcpt\n"
	s, reg := newTestServer(t, conf, Options{TimeoutOffset: 0.5})
	h := s.Metrics(reg)
	start := time.Now()
	code, body := get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "1.5"})
	elapsed := time.Since(start)
	if code != 200 {
		t.Fatalf("code %d", code)
	}
	// The tarpit's module waits 5s: well under it means the scrape's
	// deadline (1.5s less 0.5s) ended the probe.
	if elapsed > 4*time.Second {
		t.Errorf("scrape took %s, far past its 1.5s timeout", elapsed)
	}
	for _, want := range []string{
		`probe_success{module="default",target="` + ok.Addr + `"} 1`,
		`probe_success{module="default",target="` + busy.Addr + `"} 0`,
		`probe_success{module="default",target="` + tarpit.Addr + `"} 0`,
		`probe_success{module="rcpt",target="` + ok.Addr + `"} 1`,
		`probe_smtp_failure_info{module="default",phase="banner",reason="timeout",target="` + tarpit.Addr + `"} 1`,
		`probe_smtp_failure_info{module="default",phase="banner",reason="reply_4xx",target="` + busy.Addr + `"} 1`,
		`probe_smtp_last_reply_code{module="default",target="` + busy.Addr + `"} 421`,
		`probe_smtp_replies_total{class="4xx",module="default",target="` + busy.Addr + `"} 1`,
		"smtp_exporter_config_last_reload_successful 1",
		`smtp_exporter_probe_requests_refused_total{reason="unknown_module"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Counters live across scrapes.
	_, body = get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "1.5"})
	if want := `probe_smtp_replies_total{class="4xx",module="default",target="` + busy.Addr + `"} 2`; !strings.Contains(body, want+"\n") {
		t.Errorf("second scrape lacks %q", want)
	}
}

// TestProbeHandlerGzip: Prometheus asks for gzip; the answer is gzipped text
// exposition that parses.
func TestProbeHandlerGzip(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	s, _ := newTestServer(t, testModules, Options{})
	req := httptest.NewRequest(http.MethodGet, probeURL(srv.Addr, ""), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	s.Probe().ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Type") != collector.TextContentType || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers: %v", rec.Header())
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(body), "probe_success 1\n") {
		t.Fatalf("%v\n%s", err, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := parser.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
		t.Errorf("does not parse: %v", err)
	}
	for header, want := range map[string]bool{"gzip, deflate": true, "deflate": false, "gzip;q=0": false, "gzip; q=0.000": false,
		"br, GZIP ; q=0.5": true, "*": true, "": false, "gzip;q=bogus": false} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		if got := acceptsGzip(r); got != want {
			t.Errorf("acceptsGzip(%q) = %t", header, got)
		}
	}
}

// TestCountersSurviveReload: a reload keeps the reply counters of the
// targets that are still configured, whether it adds targets or removes
// them (a shrinking list once lowered the bound and trimmed by recency).
func TestCountersSurviveReload(t *testing.T) {
	busy := smtptest.Start(t, smtptest.Busy)
	conf := testModules + "targets:\n  - target: " + busy.Addr + "\n"
	var many strings.Builder
	many.WriteString(conf)
	for i := range 40 {
		fmt.Fprintf(&many, "  - target: 127.0.0.1:%d\n    module: rcpt\n", 1+i)
	}
	s, reg := newTestServer(t, many.String(), Options{TimeoutOffset: 0.5})
	h := s.Metrics(reg)
	// The rcpt targets are refused at once: nothing listens on ports 1-40.
	get(t, h, "/metrics", nil)
	get(t, h, "/metrics", nil)
	reload(t, s, conf+"  - target: "+busy.Addr+"\n    module: rcpt\n")
	_, body := get(t, h, "/metrics", nil)
	for _, want := range []string{
		`probe_smtp_replies_total{class="4xx",module="default",target="` + busy.Addr + `"} 3`,
		`probe_smtp_replies_total{class="4xx",module="rcpt",target="` + busy.Addr + `"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("after a reload /metrics lacks %q", want)
		}
	}
	if n := s.static.Counters().Len(); n != 2 {
		t.Errorf("%d counter series after the reload, want the 2 configured", n)
	}
}
