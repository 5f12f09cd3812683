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
// with their failure phase and reason, the static targets, the module
// choice of the form, and a probe's transcript reached by its link.
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
	var entries []server.HistoryEntry
	for _, p := range probes {
		en := debugProbe(t, e, p.module, p.target)
		en.Static = p.static
		en.ID = h.Add(en)
		entries = append(entries, en)
	}
	// A target that is hostile HTML, probed (and failed) without transcript.
	hostile := `<img src=x onerror="document.title='owned'">`
	h.Add(server.HistoryEntry{Target: hostile, Module: "default", Phase: "resolve", Reason: "resolve", Duration: time.Millisecond})

	page, err := server.NewLanding("smtp_exporter", "Prometheus exporter for SMTP servers", func() server.LandingData {
		return server.LandingData{
			Modules: []string{"default", "rcpt"}, DefaultModule: "default",
			Static:         h.StaticStatus([]server.StaticTarget{{Target: reject.Addr, Module: "rcpt"}}),
			Recent:         h.List(),
			HistoryEnabled: h.Enabled(),
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
		if len(rows) != 4 {
			t.Fatalf("%d rows in the recent probes, want 4:\n%s", len(rows), excerpt(dom))
		}
		cells := func(row string) []string {
			var out []string
			for _, c := range regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(row, -1) {
				out = append(out, html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(c[1], "")))
			}
			return out
		}
		// Columns: time, target, module, from, result, phase, reason, duration, log.
		first := cells(rows[0][2])
		if len(first) != 9 || first[1] != hostile || first[4] != "failure" || first[5] != "resolve" || first[8] != "not kept" {
			t.Errorf("newest row %q: want the hostile target as text, failed in resolve, no transcript", first)
		}
		for i, en := range []server.HistoryEntry{entries[2], entries[1], entries[0]} {
			row := cells(rows[i+1][2])
			if rows[i+1][1] != strconv.FormatUint(en.ID, 10) {
				t.Errorf("row %d is probe %s, want %d", i+1, rows[i+1][1], en.ID)
			}
			result := map[bool]string{true: "success", false: "failure"}[en.Success]
			want := []string{en.Time.UTC().Format("2006-01-02 15:04:05 UTC"), en.Target, en.Module,
				map[bool]string{true: "metrics", false: "probe"}[en.Static], result, en.Phase, en.Reason}
			if len(row) != 9 || strings.Join(row[:7], "|") != strings.Join(want, "|") || row[8] != "log" {
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
			!strings.Contains(dom, `name="target"`) || !strings.Contains(dom, `type="checkbox" id="debug" name="debug" value="true"`) {
			t.Errorf("the form lacks its action, target or debug field:\n%s", excerpt(dom))
		}
	})
	t.Run("static target with its last result", func(t *testing.T) {
		st := regexp.MustCompile(`(?s)<table id="static">(.*?)</table>`).FindStringSubmatch(dom)
		if st == nil || !strings.Contains(st[1], "<td>"+reject.Addr+"</td>") || !strings.Contains(st[1], ">failure<") ||
			!strings.Contains(st[1], "<td>reply_5xx</td>") {
			t.Errorf("static targets table:\n%v", st)
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
		for _, want := range []string{"550 5.1.1", `probe_smtp_failure_info{phase="rcpt",reason="reply_5xx"} 1`, "probe_success 0"} {
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
