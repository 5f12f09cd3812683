package integration

import (
	"fmt"
	"html"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// TestExporterLandingPageInChromium drives the real binary: probes through
// /probe (without debug=true) and a /metrics scrape of a static target are
// listed on its landing page, newest first, as headless Chromium renders
// it, the static target shows its last result, the form offers the
// configured modules, and a probe's log link leads to its transcript.
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
	} {
		if code, body := e.Get(t, path); code != 200 {
			t.Fatalf("%s: %d\n%s", path, code, body)
		}
	}

	dom := chromium(t, bin, "--dump-dom", e.Base+"/")
	rows := regexp.MustCompile(`(?s)<tr data-id="(\d+)">(.*?)</tr>`).FindAllStringSubmatch(dom, -1)
	if len(rows) != 3 {
		t.Fatalf("%d recent probes on the page, want 3:\n%s", len(rows), excerpt(dom))
	}
	cells := func(row string) string {
		var out []string
		for _, c := range regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(row, -1) {
			out = append(out, html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(c[1], "")))
		}
		return strings.Join(out[1:], "|") // without the time
	}
	// Newest first: the static target's probe by /metrics, the recipient
	// refused, the plain success. Columns after the time: target, module,
	// from, result, phase, reason, duration, log.
	want := []*regexp.Regexp{
		regexp.MustCompile(`^` + regexp.QuoteMeta(reject.Addr+"|rcpt|metrics|failure|rcpt|reply_5xx|") + `[0-9.µm]+s\|log$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(ok.Addr+"|rcpt|probe|success|||") + `[0-9.µm]+s\|log$`),
		regexp.MustCompile(`^` + regexp.QuoteMeta(ok.Addr+"|default|probe|success|||") + `[0-9.µm]+s\|log$`),
	}
	for i, re := range want {
		if got := cells(rows[i][2]); !re.MatchString(got) {
			t.Errorf("recent probe %d: %s, want %s", i, got, re)
		}
	}

	st := regexp.MustCompile(`(?s)<table id="static">(.*?)</table>`).FindStringSubmatch(dom)
	if st == nil || !strings.Contains(st[1], "<td>"+reject.Addr+"</td>") || !strings.Contains(st[1], "<td>reply_5xx</td>") {
		t.Errorf("the static target and its last result are not on the page:\n%v", st)
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
	for _, w := range []string{"550 5.1.1", "RCPT TO:<nobody@probe.test>"} {
		if !strings.Contains(text, w) {
			t.Errorf("the transcript lacks %q:\n%s", w, excerpt(text))
		}
	}
	if !regexp.MustCompile(`(?m)^probe_success(\{[^}]*\})? 0$`).MatchString(text) {
		t.Errorf("the transcript lacks the metrics (probe_success 0):\n%s", excerpt(text))
	}
}
