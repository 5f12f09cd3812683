package collector

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
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
`

// newTestExporter returns an exporter on the given config text.
func newTestExporter(t *testing.T, conf string, o ExporterOptions) (*Exporter, *prometheus.Registry) {
	t.Helper()
	c, err := ParseConfig([]byte(conf), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	sc := NewSafeConfig(reg)
	sc.apply(c)
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
	return NewExporter(o, reg), reg
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
	e, reg := newTestExporter(t, conf, ExporterOptions{})
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
		{"unknown module", probeURL(srv.Addr, "nope"), nil, 400, "unknown module \"nope\"\n", "unknown_module"},
		{"bad timeout header", probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "soon"}, 400, "invalid X-Prometheus-Scrape-Timeout-Seconds header \"soon\"\n", "bad_request"},
		{"denied name", probeURL("mx.internal.test", ""), nil, 403, "target mx.internal.test is denied by probe_policy\n", "policy"},
		{"denied address", probeURL("10.1.2.3:25", ""), nil, 403, "address 10.1.2.3 of 10.1.2.3 is denied by probe_policy\n", "policy"},
		{"cloud metadata", probeURL("169.254.169.254:80", ""), nil, 403, "address 169.254.169.254 of 169.254.169.254 is in 169.254.0.0/16, which /probe never dials\n", "policy"},
		{"mapped metadata", probeURL("[::ffff:169.254.169.254]:80", ""), nil, 403, "address 169.254.169.254 of ::ffff:169.254.169.254 is in 169.254.0.0/16, which /probe never dials\n", "policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(e.refused.WithLabelValues(tc.reason))
			code, body := get(t, e.ProbeHandler(), tc.url, tc.header)
			if code != tc.wantCode || body != tc.wantBody {
				t.Errorf("= %d %q, want %d %q", code, body, tc.wantCode, tc.wantBody)
			}
			if got := testutil.ToFloat64(e.refused.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("refused{reason=%q} went from %v to %v", tc.reason, before, got)
			}
		})
	}
	if n := srv.Accepted.Load(); n != 0 {
		t.Errorf("refused requests dialled the server %d times", n)
	}
	if n := e.probeCounters.Len(); n != 0 {
		t.Errorf("refused requests created %d counter series", n)
	}
	_ = reg
}

func TestProbeHandlerSuccessAndCounters(t *testing.T) {
	srv := smtptest.Start(t, smtptest.RejectRcpt)
	e, _ := newTestExporter(t, testModules, ExporterOptions{})
	for i := 1; i <= 2; i++ {
		code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, "default"), nil)
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
	code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, "rcpt"), nil)
	for _, want := range []string{"probe_success 0", "probe_smtp_last_reply_code 550", `probe_smtp_last_enhanced_status_info{code="5.1.1"} 1`,
		`probe_smtp_failure_info{phase="rcpt",reason="reply_5xx"} 1`, `probe_smtp_replies_total{class="5xx"} 1`} {
		if code != 200 || !strings.Contains(body, want+"\n") {
			t.Errorf("rcpt module: %d, body lacks %q:\n%s", code, want, body)
		}
	}
	_, body = get(t, e.ProbeHandler(), probeURL(srv.Addr, "relay"), nil)
	if !strings.Contains(body, "probe_success 1\n") || !strings.Contains(body, `probe_smtp_reply_code{phase="rset"} 250`) {
		t.Errorf("open relay check against a refusing server should succeed:\n%s", body)
	}
}

// TestProbeHandlerTimeoutHeader: the probe ends at the scrape timeout less
// the offset, not at the module's 5s.
func TestProbeHandlerTimeoutHeader(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Tarpit)
	e, _ := newTestExporter(t, testModules, ExporterOptions{TimeoutOffset: 0.5})
	start := time.Now()
	code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "1"})
	elapsed := time.Since(start)
	if code != 200 || !strings.Contains(body, `probe_smtp_failure_info{phase="banner",reason="timeout"} 1`) {
		t.Errorf("%d %s", code, body)
	}
	if elapsed < 400*time.Millisecond || elapsed > 900*time.Millisecond {
		t.Errorf("probe took %s, want about 0.5s (1s header - 0.5s offset)", elapsed)
	}
}

func TestProbeHandlerDebug(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Busy)
	e, _ := newTestExporter(t, testModules, ExporterOptions{})
	code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, "secret", "debug", "true"), nil)
	for _, want := range []string{"Probe transcript:", "S: 421 #4.4.5 Too many connections from your host", "C: QUIT",
		"Replies explained:", "banner: 421 4.4.5: temporary failure", "congested", "Probe FAILED",
		"Metrics that would have been returned:", `probe_smtp_last_enhanced_status_info{code="4.4.5"} 1`,
		"Module configuration (secret):", "password: <secret>"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "sup3r-s3cret") {
		t.Errorf("debug output leaks the password:\n%s", body)
	}
}

func TestProbeHandlerOverload(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Tarpit)
	e, _ := newTestExporter(t, testModules, ExporterOptions{MaxInFlight: 1})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		get(t, e.ProbeHandler(), probeURL(srv.Addr, ""), map[string]string{scrapeTimeoutHeader: "1.5"})
	}()
	deadline := time.Now().Add(2 * time.Second)
	for len(e.limiter) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, ""), nil)
	if code != 503 || !strings.Contains(body, "probes are running already") || time.Since(start) > 100*time.Millisecond {
		t.Errorf("= %d %q after %s, want an immediate 503", code, body, time.Since(start))
	}
	wg.Wait()
	if got := testutil.ToFloat64(e.refused.WithLabelValues("overload")); got != 1 {
		t.Errorf("overload refusals = %v", got)
	}
}

func TestProbeHandlerStaticOnly(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	conf := testModules + "targets:\n  - target: " + srv.Addr + "\n"
	e, _ := newTestExporter(t, conf, ExporterOptions{StaticOnly: true})
	if code, _ := get(t, e.ProbeHandler(), probeURL(srv.Addr, ""), nil); code != 200 {
		t.Errorf("listed target: %d", code)
	}
	code, body := get(t, e.ProbeHandler(), probeURL(srv.Addr, "rcpt"), nil)
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
	e, reg := newTestExporter(t, conf, ExporterOptions{TimeoutOffset: 0.5})
	h := e.MetricsHandler(reg)
	start := time.Now()
	code, body := get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "1.5"})
	elapsed := time.Since(start)
	if code != 200 {
		t.Fatalf("code %d", code)
	}
	if elapsed > 1500*time.Millisecond {
		t.Errorf("scrape took %s, past its 1.5s timeout", elapsed)
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
	e, _ := newTestExporter(t, testModules, ExporterOptions{})
	req := httptest.NewRequest(http.MethodGet, probeURL(srv.Addr, ""), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec := httptest.NewRecorder()
	e.ProbeHandler().ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Type") != TextContentType {
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
	if _, err := parseExposition(body); err != nil {
		t.Errorf("does not parse: %v", err)
	}
	for header, want := range map[string]bool{"gzip, deflate": true, "deflate": false, "gzip;q=0": false, "br, GZIP ; q=0.5": true} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept-Encoding", header)
		if got := acceptsGzip(r); got != want {
			t.Errorf("acceptsGzip(%q) = %t", header, got)
		}
	}
}

// TestCountersSurviveReload: a reload keeps the reply counters of the
// targets that are still configured.
func TestCountersSurviveReload(t *testing.T) {
	busy := smtptest.Start(t, smtptest.Busy)
	conf := testModules + "targets:\n  - target: " + busy.Addr + "\n"
	e, reg := newTestExporter(t, conf, ExporterOptions{})
	h := e.MetricsHandler(reg)
	get(t, h, "/metrics", nil)
	reloaded, err := ParseConfig([]byte(conf+"  - target: "+busy.Addr+"\n    module: rcpt\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Config.apply(reloaded)
	_, body := get(t, h, "/metrics", nil)
	for _, want := range []string{
		`probe_smtp_replies_total{class="4xx",module="default",target="` + busy.Addr + `"} 2`,
		`probe_smtp_replies_total{class="4xx",module="rcpt",target="` + busy.Addr + `"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("after a reload /metrics lacks %q", want)
		}
	}
}
