package server

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestHistoryRecordsProbes: probes through /probe (with and without
// debug=true) and /metrics are listed on the landing page newest first,
// each with its transcript at /logs; a refused /probe is not a probe.
func TestHistoryRecordsProbes(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	reject := smtptest.Start(t, smtptest.RejectRcpt)
	conf := testModules + "targets:\n  - target: " + reject.Addr + "\n    module: rcpt\n"
	s, reg := newTestServer(t, conf, Options{HistoryLimit: 10, HistoryBytes: 1 << 20})
	mux, err := s.Routes("smtp_exporter", reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		probeURL(ok.Addr, "default"),
		probeURL(ok.Addr, "rcpt", "debug", "true"),
		probeURL(ok.Addr, "no-such-module"), // refused: not listed
		"/metrics",
	} {
		get(t, mux, path, nil)
	}

	recent := s.history.List()
	if len(recent) != 3 {
		t.Fatalf("%d recent probes, want 3: %+v", len(recent), recent)
	}
	bye := HistoryReply{221, "2.0.0", "Bye"}
	want := []struct {
		target, module  string
		static, success bool
		phase, reason   string
		reply           HistoryReply
	}{
		{reject.Addr, "rcpt", true, false, "rcpt", "reply_5xx", HistoryReply{550, "5.1.1", "<nobody@example.org>: Recipient address rejected"}},
		{ok.Addr, "rcpt", false, true, "", "", bye},
		{ok.Addr, "default", false, true, "", "", bye},
	}
	for i, w := range want {
		e := recent[i]
		if e.Target != w.target || e.Module != w.module || e.Static != w.static || e.Success != w.success ||
			e.Phase != w.phase || e.Reason != w.reason || e.Reply != w.reply || e.Duration <= 0 || e.TranscriptSize == 0 {
			t.Errorf("recent probe %d: %+v, want %+v with a duration and a transcript", i, e, w)
		}
	}

	code, text := get(t, mux, "/logs?id="+strconv.FormatUint(recent[0].ID, 10), nil)
	if code != 200 || !strings.Contains(text, "550 5.1.1") || !strings.Contains(text, "RCPT TO:<nobody@example.org>") ||
		!regexp.MustCompile(`(?m)^probe_success(\{[^}]*\})? 0$`).MatchString(text) {
		t.Errorf("/logs of the static probe: %d\n%s", code, text)
	}
	// The plain /probe's text: its answer's metrics, after the transcript.
	code, text = get(t, mux, "/logs?id="+strconv.FormatUint(recent[2].ID, 10), nil)
	if code != 200 || !strings.Contains(text, "C: EHLO probe.test") ||
		!strings.Contains(text, "Metrics that would have been returned:\n# HELP") || !strings.Contains(text, "\nprobe_success 1\n") ||
		!strings.Contains(text, "Module configuration (default):") {
		t.Errorf("/logs of the plain /probe: %d\n%s", code, text)
	}
	_, metrics := get(t, mux, "/metrics", nil)
	if !strings.Contains(metrics, "smtp_exporter_history_probes 4\n") || !regexp.MustCompile(`(?m)^smtp_exporter_history_transcript_bytes [1-9]\d*$`).MatchString(metrics) ||
		!regexp.MustCompile(`(?m)^smtp_exporter_history_bytes [1-9]\d*$`).MatchString(metrics) {
		t.Errorf("/metrics lacks the history's gauges")
	}
	code, page := get(t, mux, "/", nil)
	if code != 200 || strings.Count(page, `<tr data-id="`) != 4 || !strings.Contains(page, `<option value="rcpt">rcpt</option>`) ||
		!strings.Contains(page, `<td>`+reject.Addr+`</td><td>rcpt</td>`) {
		t.Errorf("landing page %d:\n%s", code, page)
	}
}

// TestHistoryDisabledRecordsNothing: with --history.limit=0 the page says
// so and /logs knows no probe.
func TestHistoryDisabledRecordsNothing(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	s, reg := newTestServer(t, testModules, Options{})
	mux, err := s.Routes("smtp_exporter", reg)
	if err != nil {
		t.Fatal(err)
	}
	get(t, mux, probeURL(ok.Addr, "default"), nil)
	if n := len(s.history.List()); n != 0 {
		t.Errorf("%d probes kept with the history disabled", n)
	}
	if code, _ := get(t, mux, "/logs?id=1", nil); code != 404 {
		t.Errorf("/logs?id=1: %d, want 404", code)
	}
	if _, page := get(t, mux, "/", nil); !strings.Contains(page, "--history.limit</code> is 0") {
		t.Errorf("the page does not say the history is off:\n%s", page)
	}
}

// TestLandingShowsFailedReload: while the last reload has failed the page
// says so, with the error and the running configuration's word; a reload
// that succeeds takes the banner away. /logs of a static probe says where
// it came from.
func TestLandingShowsFailedReload(t *testing.T) {
	reject := smtptest.Start(t, smtptest.RejectRcpt)
	conf := testModules + "targets:\n  - target: " + reject.Addr + "\n    module: rcpt\n"
	path := filepath.Join(t.TempDir(), "c.yml")
	s, reg := newTestServer(t, conf, Options{HistoryLimit: 10, HistoryBytes: 1 << 20})
	s.opts.ConfigFile = path
	mux, err := s.Routes("smtp_exporter", reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, page := get(t, mux, "/", nil); strings.Contains(page, "reload-error") {
		t.Fatal("a reload banner before any reload failed")
	}
	if err := os.WriteFile(path, []byte(conf+"  - target: x.example.org\n    module: no-such-module\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("a config naming an unknown module reloaded")
	}
	get(t, mux, "/metrics", nil)
	_, page := get(t, mux, "/", nil)
	banner := regexp.MustCompile(`(?s)<div class="banner" id="reload-error" role="alert">(.*?)</div>`).FindStringSubmatch(page)
	if banner == nil || !strings.Contains(banner[1], "no-such-module") || !strings.Contains(banner[1], "still running") {
		t.Errorf("after a failed reload, banner %q", banner)
	}
	// The old configuration runs: its static target was probed.
	if !strings.Contains(page, `<td class="reply"><code>550</code> <code>5.1.1</code> &lt;nobody@example.org&gt;: Recipient address rejected</td>`) {
		t.Errorf("the static target's reply is not on the page:\n%s", page)
	}
	_, logs := get(t, mux, "/logs?id=1", nil)
	if !strings.HasPrefix(logs, "Recent probe 1\nTarget:   "+reject.Addr+"\nModule:   rcpt\n") || !strings.Contains(logs, "\nFrom:     /metrics") ||
		!strings.Contains(logs, "\nResult:   failure in phase rcpt (reply_5xx), in ") {
		t.Errorf("/logs header:\n%s", logs)
	}

	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, page := get(t, mux, "/", nil); strings.Contains(page, "reload-error") {
		t.Error("the banner stays after a successful reload")
	}
}
