package integration

import (
	"fmt"
	"html"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// TestExporterLandingPageInChromium drives the real binary: probes through
// /probe (without debug=true) and two /metrics scrapes of a static target
// are listed on its landing page, newest first, with their deciding
// replies, as headless Chromium renders it; the static target shows its
// last result, its reply and since when it has been failing (the first
// scrape); a failed reload puts up a banner with its error, a good one
// takes it down; the form offers the configured modules; and a probe's
// log link leads to its transcript, after a header saying what it is.
func TestExporterLandingPageInChromium(t *testing.T) {
	bin := requireChromium(t)
	ok := smtptest.Start(t, smtptest.OK)
	reject := smtptest.Start(t, smtptest.RejectRcpt)
	conf := filepath.Join(t.TempDir(), "c.yml")
	write(t, conf, fmt.Sprintf(`modules:
  default:
    helo_name: probe.test
  rcpt:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [nobody@probe.test]
targets:
  - target: %s
    module: rcpt
`, reject.Addr))
	e := testenv.StartExporter(t, binary, "--config.file="+conf, "--history.limit=50")

	for _, path := range []string{
		"/probe?" + url.Values{"target": {ok.Addr}}.Encode(),
		"/probe?" + url.Values{"target": {ok.Addr}, "module": {"rcpt"}}.Encode(),
		"/metrics",
		"", // a second apart: the two scrapes' times differ on the page
		"/metrics",
	} {
		if path == "" {
			time.Sleep(1100 * time.Millisecond)
			continue
		}
		if code, body := e.Get(t, path); code != 200 {
			t.Fatalf("%s: %d\n%s", path, code, body)
		}
	}
	// A reload that fails: the old configuration runs on, and says so.
	write(t, conf, "modules:\n  default:\n    timeout: ten seconds\n")
	if code, body := e.Post(t, "/-/reload"); code != 500 {
		t.Fatalf("reload of a broken config: %d\n%s", code, body)
	}

	dom := chromium(t, bin, "--dump-dom", e.Base+"/")
	rows := regexp.MustCompile(`(?s)<tr data-id="(\d+)">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	if len(rows) != 4 {
		t.Fatalf("%d recent probes on the page, want 4:\n%s", len(rows), excerpt(dom))
	}
	// Newest first: the static target's two probes by /metrics, the
	// recipient refused, the plain success. Columns after the time:
	// target, module, from, result, phase, reason, reply, duration, log.
	refused := "550 5.1.1 <nobody@example.org>: Recipient address rejected"
	want := []*regexp.Regexp{
		regexp.MustCompile(`^` + regexp.QuoteMeta(reject.Addr+"|rcpt|/metrics|failure|rcpt|reply_5xx|"+refused+"|") + `[0-9.µm]+s\|log$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(reject.Addr+"|rcpt|/metrics|failure|rcpt|reply_5xx|"+refused+"|") + `[0-9.µm]+s\|log$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(ok.Addr+"|rcpt|/probe|success|||221 2.0.0 Bye|") + `[0-9.µm]+s\|log$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(ok.Addr+"|default|/probe|success|||221 2.0.0 Bye|") + `[0-9.µm]+s\|log$`),
	}
	for i, re := range want {
		if got := strings.Join(cells(rows[i][2])[1:], "|"); !re.MatchString(got) { // without the time
			t.Errorf("recent probe %d: %s, want %s", i, got, re)
		}
	}

	// The static target: its last result and reply at the second scrape's
	// time, failing since the first scrape's, no success.
	st := regexp.MustCompile(`(?s)<table id="static">.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(dom)
	if st == nil {
		t.Fatalf("no static targets table:\n%s", excerpt(dom))
	}
	first, second := cells(rows[1][2])[0], cells(rows[0][2])[0]
	if first == second {
		t.Fatalf("the two scrapes have the same time %s", first)
	}
	wantStatic := []string{reject.Addr, "rcpt", "failure", "rcpt", "reply_5xx", refused, second, "none since the exporter started", first, "log"}
	if got := cells(st[1]); strings.Join(got, "|") != strings.Join(wantStatic, "|") {
		t.Errorf("static target row\n%q\nwant\n%q", got, wantStatic)
	}

	banner := regexp.MustCompile(`(?s)<div class="banner" id="reload-error" role="alert">(.*?)</div>`).FindStringSubmatch(dom)
	if banner == nil {
		t.Errorf("no banner after a failed reload:\n%s", excerpt(dom))
	} else if text := html.UnescapeString(banner[1]); !strings.Contains(text, "The last configuration reload failed") ||
		!strings.Contains(text, "ten seconds") || !strings.Contains(text, "still running") {
		t.Errorf("the reload banner does not say what failed:\n%s", text)
	}
	if !strings.Contains(dom, `type="checkbox" id="debug" name="debug" value="true" checked=""`) {
		t.Errorf("the form does not ask for the readable transcript by default:\n%s", excerpt(dom))
	}
	sel := regexp.MustCompile(`(?s)<select id="module" name="module">(.*?)</select>`).FindStringSubmatch(dom)
	if sel == nil {
		t.Fatalf("no module select on the page:\n%s", excerpt(dom))
	}
	if opts := regexp.MustCompile(`<option value="([^"]*)"`).FindAllStringSubmatch(sel[1], -1); len(opts) != 2 ||
		opts[0][1] != "default" || opts[1][1] != "rcpt" {
		t.Errorf("module options %q, want default and rcpt", opts)
	}
	if strings.Contains(dom, ">Version  (") || strings.Contains(dom, "Version unknown") {
		t.Errorf("the page shows no version:\n%s", excerpt(dom))
	}

	// The static probe's transcript, by its link.
	href := regexp.MustCompile(`<a href="([^"]+)">log</a>`).FindStringSubmatch(rows[0][2])
	if href == nil {
		t.Fatalf("no log link in %s", rows[0][2])
	}
	base, _ := url.Parse(e.Base + "/")
	ref, err := url.Parse(html.UnescapeString(href[1]))
	if err != nil {
		t.Fatal(err)
	}
	text := html.UnescapeString(chromium(t, bin, "--dump-dom", base.ResolveReference(ref).String()))
	header := "Recent probe " + rows[0][1] + "\nTarget:   " + reject.Addr + "\nModule:   rcpt\nTime:     " + second +
		"\nFrom:     /metrics (a static target of the configuration)\nResult:   failure in phase rcpt (reply_5xx), in "
	for _, w := range []string{header, "\nReply:    " + refused + "\n", "550 5.1.1", "RCPT TO:<nobody@probe.test>"} {
		if !strings.Contains(text, w) {
			t.Errorf("the transcript lacks %q:\n%s", w, excerpt(text))
		}
	}
	if !regexp.MustCompile(`(?m)^probe_success(\{[^}]*\})? 0$`).MatchString(text) {
		t.Errorf("the transcript lacks the metrics (probe_success 0):\n%s", excerpt(text))
	}

	// A reload that succeeds takes the banner down.
	write(t, conf, fmt.Sprintf("modules:\n  default:\n    helo_name: probe.test\ntargets:\n  - target: %s\n", ok.Addr))
	if code, body := e.Post(t, "/-/reload"); code != 200 {
		t.Fatalf("reload of a good config: %d\n%s", code, body)
	}
	if _, page := e.Get(t, "/"); strings.Contains(page, "reload-error") {
		t.Error("the banner stays after a successful reload")
	}
}
