package integration

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/server"
)

// chromiumTimeout bounds one headless Chromium run; a hung browser fails the
// test instead of hanging it.
const chromiumTimeout = 90 * time.Second

func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	testenv.Require(t, err == nil, "chromium (Debian's chromium package) is not installed")
	return p
}

// chromium runs headless Chromium with mode (--dump-dom, or
// --screenshot=FILE) on target and returns what it printed on stdout. It
// resolves no name and uses no proxy, so it reaches loopback only.
func chromium(t *testing.T, bin, mode, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	profile := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--no-proxy-server",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--disable-dev-shm-usage", "--window-size=1280,1000",
		"--user-data-dir="+profile, mode, target)
	// Chromium forks helpers: kill the whole process group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium %s %s: no answer within %s\n%s", mode, target, chromiumTimeout, stderr.String())
	}
	if err != nil {
		t.Fatalf("chromium %s %s: %v\n%s", mode, target, err, stderr.String())
	}
	return stdout.String()
}

// cells are the texts of a table row's cells, as a reader sees them.
func cells(row string) []string {
	var out []string
	for _, c := range regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(row, -1) {
		out = append(out, html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(c[1], "")))
	}
	return out
}

// excerpt shortens a page for a failure message.
func excerpt(s string) string {
	const most = 3000
	if len(s) <= most {
		return s
	}
	return s[:most] + fmt.Sprintf("\n[... %d more bytes]", len(s)-most)
}

// debugProbe runs a /probe?debug=true on the exporter and returns the
// history entry the /probe handler would record for it: the result read
// from the metrics at the end of the debug text, and the text itself.
func debugProbe(t *testing.T, e *testenv.Exporter, module, target string) server.HistoryEntry {
	t.Helper()
	start := time.Now()
	code, body := e.Get(t, "/probe?"+url.Values{"module": {module}, "target": {target}, "debug": {"true"}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("debug probe of %s: %d\n%s", target, code, body)
	}
	success, ok := metricValue(body, "probe_success")
	if !ok {
		t.Fatalf("no probe_success in the debug text:\n%s", body)
	}
	dur, _ := metricValue(body, "probe_duration_seconds")
	en := server.HistoryEntry{Time: start, Target: target, Module: module, Success: success == 1,
		Duration: time.Duration(dur * float64(time.Second)), Transcript: []byte(body)}
	if m := regexp.MustCompile(`probe_smtp_failure_info\{phase="([^"]*)",reason="([^"]*)"\} 1`).FindStringSubmatch(body); m != nil {
		en.Phase, en.Reason = m[1], m[2]
	}
	return en
}

// TestLandingPageInChromium renders the landing page, over a history of
// real debug probes, in headless Chromium: the recent probes newest first
// with their failure phase, reason and deciding reply, the static targets
// with their replies, last success and failing-since time, the banner of a
// failed reload, the module choice of the form (the readable transcript by
// default), and a probe's transcript reached by its link.
func TestLandingPageInChromium(t *testing.T) {
	bin := requireChromium(t)
	ok := smtptest.Start(t, smtptest.OK)
	reject := smtptest.Start(t, smtptest.RejectRcpt)
	busy := smtptest.Start(t, smtptest.Busy)
	conf := filepath.Join(t.TempDir(), "c.yml")
	write(t, conf, `modules:
  default:
    helo_name: probe.test
  rcpt:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [nobody@probe.test]
`)
	e := testenv.StartExporter(t, binary, "--config.file="+conf)

	h := server.NewHistory(100, 1<<20)
	probes := []struct {
		module, target string
		static         bool
	}{
		{"default", ok.Addr, false},
		{"rcpt", reject.Addr, true},
		{"default", busy.Addr, false},
	}
	// The replies that decide each probe, as the fakes send them (checked
	// in the real transcripts below).
	replies := map[string]server.HistoryReply{
		ok.Addr:     {Code: 221, Enhanced: "2.0.0", Text: "Bye"},
		reject.Addr: {Code: 550, Enhanced: "5.1.1", Text: "<nobody@example.org>: Recipient address rejected"},
		busy.Addr:   {Code: 421, Enhanced: "4.4.5", Text: "Too many connections from your host"},
	}
	// Before the probes below: the static rcpt target succeeded an hour
	// ago and has failed since half an hour ago (the real probe below is
	// its latest failure).
	lastSuccess := time.Now().Add(-time.Hour)
	failingSince := time.Now().Add(-30 * time.Minute)
	h.Add(server.HistoryEntry{Time: lastSuccess, Target: reject.Addr, Module: "rcpt", Static: true, Success: true})
	h.Add(server.HistoryEntry{Time: failingSince, Target: reject.Addr, Module: "rcpt", Static: true, Phase: "rcpt", Reason: "reply_5xx"})
	var entries []server.HistoryEntry
	for _, p := range probes {
		en := debugProbe(t, e, p.module, p.target)
		en.Static = p.static
		en.Reply = replies[p.target]
		if !regexp.MustCompile(fmt.Sprintf(`S: %d #?%s %s\n`, en.Reply.Code, regexp.QuoteMeta(en.Reply.Enhanced), regexp.QuoteMeta(en.Reply.Text))).Match(en.Transcript) {
			t.Fatalf("the transcript of %s lacks its reply %+v:\n%s", p.target, en.Reply, excerpt(string(en.Transcript)))
		}
		en.ID = h.Add(en)
		entries = append(entries, en)
	}
	// A target that is hostile HTML, probed (and failed) without transcript.
	hostile := `<img src=x onerror="document.title='owned'">`
	h.Add(server.HistoryEntry{Target: hostile, Module: "default", Phase: "resolve", Reason: "resolve", Duration: time.Millisecond,
		Reply: server.HistoryReply{Code: 554, Text: hostile}})
	reloadFailed := time.Date(2026, 11, 29, 3, 12, 0, 0, time.UTC)
	reloadErr := `modules.default.timeout: "ten" is not a duration <b onmouseover="document.title='owned'">`

	page, err := server.NewLanding("smtp_exporter", "Prometheus exporter for SMTP servers", func() server.LandingData {
		return server.LandingData{
			Modules: []string{"default", "rcpt"}, DefaultModule: "default",
			Static:         h.StaticStatus([]server.StaticTarget{{Target: reject.Addr, Module: "rcpt"}}),
			Recent:         h.List(),
			HistoryEnabled: h.Enabled(),
			ReloadError:    reloadErr,
			ReloadFailedAt: reloadFailed,
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", page)
	mux.Handle("/logs", server.LogsHandler(h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dom := chromium(t, bin, "--dump-dom", srv.URL+"/")

	t.Run("recent probes newest first", func(t *testing.T) {
		rows := regexp.MustCompile(`(?s)<tr data-id="(\d+)">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
		if len(rows) != 6 {
			t.Fatalf("%d rows in the recent probes, want 6:\n%s", len(rows), excerpt(dom))
		}
		// Columns: time, target, module, from, result, phase, reason, reply, duration, log.
		first := cells(rows[0][2])
		if len(first) != 10 || first[1] != hostile || first[4] != "failure" || first[5] != "resolve" || first[7] != "554 "+hostile || first[9] != "not kept" {
			t.Errorf("newest row %q: want the hostile target and reply as text, failed in resolve, no transcript", first)
		}
		for i, en := range []server.HistoryEntry{entries[2], entries[1], entries[0]} {
			row := cells(rows[i+1][2])
			if rows[i+1][1] != strconv.FormatUint(en.ID, 10) {
				t.Errorf("row %d is probe %s, want %d", i+1, rows[i+1][1], en.ID)
			}
			result := map[bool]string{true: "success", false: "failure"}[en.Success]
			want := []string{en.Time.UTC().Format("2006-01-02 15:04:05 UTC"), en.Target, en.Module,
				map[bool]string{true: "/metrics", false: "/probe"}[en.Static], result, en.Phase, en.Reason,
				fmt.Sprintf("%d %s %s", en.Reply.Code, en.Reply.Enhanced, en.Reply.Text)}
			if len(row) != 10 || strings.Join(row[:8], "|") != strings.Join(want, "|") || row[9] != "log" {
				t.Errorf("row %d %q, want %q then a duration and a log link", i+1, row, want)
			}
		}
		if entries[1].Phase != "rcpt" || entries[1].Reason != "reply_5xx" || entries[2].Phase != "banner" || entries[2].Reason != "reply_4xx" {
			t.Errorf("the real probes did not fail as the fakes make them: %q %q, %q %q",
				entries[1].Phase, entries[1].Reason, entries[2].Phase, entries[2].Reason)
		}
		if strings.Contains(dom, "<img") {
			t.Errorf("the hostile target became markup:\n%s", excerpt(dom))
		}
		if title := regexp.MustCompile(`<title>(.*?)</title>`).FindStringSubmatch(dom); title == nil || title[1] != "smtp_exporter" {
			t.Errorf("title %q: the page ran the hostile target's script", title)
		}
	})
	t.Run("form offers the modules", func(t *testing.T) {
		sel := regexp.MustCompile(`(?s)<select id="module" name="module">(.*?)</select>`).FindStringSubmatch(dom)
		if sel == nil {
			t.Fatalf("no module select in the rendered form:\n%s", excerpt(dom))
		}
		opts := regexp.MustCompile(`<option value="([^"]*)"`).FindAllStringSubmatch(sel[1], -1)
		if len(opts) != 2 || opts[0][1] != "default" || opts[1][1] != "rcpt" {
			t.Errorf("options %q, want default and rcpt", opts)
		}
		if !regexp.MustCompile(`<form id="probe-form" action="probe" method="get">`).MatchString(dom) ||
			!strings.Contains(dom, `name="target"`) || !strings.Contains(dom, `type="checkbox" id="debug" name="debug" value="true" checked=""`) {
			t.Errorf("the form lacks its action, target or debug field (checked: the readable transcript by default):\n%s", excerpt(dom))
		}
	})
	t.Run("static target with its last result", func(t *testing.T) {
		st := regexp.MustCompile(`(?s)<table id="static">.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(dom)
		if st == nil {
			t.Fatalf("no static targets table:\n%s", excerpt(dom))
		}
		// Columns: target, module, result, phase, reason, reply, time, last
		// success, failing since, log.
		row := cells(st[1])
		when := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
		want := []string{reject.Addr, "rcpt", "failure", "rcpt", "reply_5xx", "550 5.1.1 <nobody@example.org>: Recipient address rejected",
			when(entries[1].Time), when(lastSuccess), when(failingSince), "log"}
		if strings.Join(row, "|") != strings.Join(want, "|") {
			t.Errorf("static target row\n%q\nwant\n%q", row, want)
		}
	})
	t.Run("reload banner", func(t *testing.T) {
		banner := regexp.MustCompile(`(?s)<div class="banner" id="reload-error" role="alert">(.*?)</div>`).FindStringSubmatch(dom)
		if banner == nil {
			t.Fatalf("no reload banner in the rendered page:\n%s", excerpt(dom))
		}
		text := html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(banner[1], ""))
		for _, want := range []string{"The last configuration reload failed (2026-11-29 03:12:00 UTC)", "still running", reloadErr} {
			if !strings.Contains(text, want) {
				t.Errorf("the banner lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(banner[1], "<b ") {
			t.Errorf("the reload error became markup:\n%s", banner[1])
		}
	})
	t.Run("transcript link", func(t *testing.T) {
		// The rcpt probe's row links its transcript; follow that link.
		row := regexp.MustCompile(`(?s)<tr data-id="` + strconv.FormatUint(entries[1].ID, 10) + `">.*?</tr>`).FindString(dom)
		href := regexp.MustCompile(`<a href="([^"]+)">log</a>`).FindStringSubmatch(row)
		if href == nil {
			t.Fatalf("no log link in %s", row)
		}
		base, _ := url.Parse(srv.URL + "/")
		ref, err := url.Parse(html.UnescapeString(href[1]))
		if err != nil {
			t.Fatal(err)
		}
		link := base.ResolveReference(ref)
		if link.Path != "/logs" || link.Query().Get("id") != strconv.FormatUint(entries[1].ID, 10) {
			t.Errorf("log link %s, want /logs?id=%d", link, entries[1].ID)
		}
		text := html.UnescapeString(chromium(t, bin, "--dump-dom", link.String()))
		header := fmt.Sprintf("Recent probe %d\nTarget:   %s\nModule:   rcpt\nTime:     %s\nFrom:     /metrics", entries[1].ID, reject.Addr,
			entries[1].Time.UTC().Format("2006-01-02 15:04:05 UTC"))
		for _, want := range []string{header, "Result:   failure in phase rcpt (reply_5xx), in ",
			"550 5.1.1", `probe_smtp_failure_info{phase="rcpt",reason="reply_5xx"} 1`, "probe_success 0"} {
			if !strings.Contains(text, want) {
				t.Errorf("the transcript page lacks %q:\n%s", want, excerpt(text))
			}
		}
		gone := chromium(t, bin, "--dump-dom", srv.URL+"/logs?id=999")
		if !strings.Contains(gone, "not among the recent probes") {
			t.Errorf("an unknown probe's log page:\n%s", excerpt(gone))
		}
	})

	// For a look with one's own eyes: SMTP_EXPORTER_SCREENSHOT=/tmp/landing.png
	if shot := os.Getenv("SMTP_EXPORTER_SCREENSHOT"); shot != "" {
		chromium(t, bin, "--screenshot="+shot, srv.URL+"/")
		if _, err := os.Stat(shot); err != nil {
			t.Errorf("no screenshot: %v", err)
		}
		fmt.Fprintf(os.Stderr, "screenshot of the landing page: %s\n", shot)
	}
}
