package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const hostileText = `<script>alert("x")</script>"'&`

// landingFixture is a history with a hostileText target and reason, and the
// page over it.
func landingFixture(t *testing.T) (*History, http.Handler) {
	t.Helper()
	h := NewHistory(10, 1<<20)
	base := time.Date(2026, 11, 29, 3, 12, 0, 0, time.UTC)
	h.Add(HistoryEntry{Time: base, Target: "mx1.test:25", Module: "default", Success: true, Reply: HistoryReply{221, "2.0.0", "Bye"},
		Duration: 42 * time.Millisecond, Transcript: []byte("S: 220 mx1.test ESMTP\nprobe_success 1\n")})
	h.Add(HistoryEntry{Time: base.Add(time.Minute), Target: hostileText, Module: "rcpt", Static: true, Reply: HistoryReply{550, "5.1.1", hostileText},
		Phase: "rcpt", Reason: hostileText, Duration: 1500 * time.Millisecond, Transcript: []byte("S: 550 " + hostileText + "\n")})
	h.Add(HistoryEntry{Time: base.Add(2 * time.Minute), Target: "mx3.test:25", Module: "default",
		Phase: "connect", Reason: "connect", Duration: 3 * time.Second}) // no transcript
	// A static target that succeeded at 03:15 and has failed since 03:16.
	for i, ok := range []bool{true, false, false} {
		e := HistoryEntry{Time: base.Add(time.Duration(3+i) * time.Minute), Target: "mx4.test:25", Module: "default", Static: true, Success: ok,
			Reply: HistoryReply{554, "5.7.1", "client host blocked"}, Phase: "banner", Reason: "reply_5xx", Transcript: []byte("S: 554 5.7.1 client host blocked\n")}
		if ok {
			e.Reply = HistoryReply{221, "2.0.0", "Bye"}
		}
		h.Add(e)
	}
	page, err := NewLanding("smtp_exporter", "Prometheus exporter for SMTP servers", func() LandingData {
		return LandingData{
			Modules:        []string{"default", "rcpt", hostileText},
			DefaultModule:  "default",
			Static:         h.StaticStatus([]StaticTarget{{hostileText, "rcpt"}, {"never.test:25", "default"}, {"mx4.test:25", "default"}}),
			Recent:         h.List(),
			HistoryEnabled: h.Enabled(),
			ReloadError:    "modules.default.timeout: " + hostileText,
			ReloadFailedAt: base.Add(6 * time.Minute),
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, page
}

func landingGet(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLandingPage(t *testing.T) {
	_, page := landingFixture(t)
	resp, body := landingGet(t, page, http.MethodGet, "/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}

	t.Run("hostileText text escaped", func(t *testing.T) {
		if strings.Contains(body, "<script>") || strings.Contains(body, `alert("x")`) {
			t.Errorf("unescaped server-controlled text in the page:\n%s", body)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&#39;&amp;") {
			t.Errorf("the hostileText target is not shown escaped:\n%s", body)
		}
	})
	t.Run("module select", func(t *testing.T) {
		sel := regexp.MustCompile(`(?s)<select id="module" name="module">(.*?)</select>`).FindStringSubmatch(body)
		if sel == nil {
			t.Fatalf("no module select:\n%s", body)
		}
		opts := regexp.MustCompile(`<option value="([^"]*)"( selected)?>`).FindAllStringSubmatch(sel[1], -1)
		if len(opts) != 3 || opts[0][1] != "default" || opts[0][2] == "" || opts[1][1] != "rcpt" || opts[1][2] != "" {
			t.Errorf("options %q: want default (selected), rcpt, and the escaped one", opts)
		}
		if !strings.Contains(body, `action="probe"`) || !strings.Contains(body, `name="debug" value="true" checked>`) {
			t.Error("the form does not go to probe with a debug checkbox, checked: the readable transcript by default")
		}
	})
	t.Run("recent probes newest first", func(t *testing.T) {
		rows := regexp.MustCompile(`<tr data-id="(\d+)">`).FindAllStringSubmatch(body, -1)
		var got []string
		for _, r := range rows {
			got = append(got, r[1])
		}
		if strings.Join(got, ",") != "6,5,4,3,2,1" {
			t.Errorf("rows %v, want 6,5,4,3,2,1", got)
		}
		for _, want := range []string{
			`<td>2026-11-29 03:14:00 UTC</td><td>mx3.test:25</td><td>default</td><td>/probe</td>`,
			`<td>2026-11-29 03:13:00 UTC</td><td>&lt;script&gt;`, `<td>rcpt</td><td>/metrics</td>`,
			`<td class="fail">failure</td>`, `<td>connect</td><td>connect</td><td class="reply"></td><td class="num">3s</td>`,
			`<td class="reply"><code>221</code> <code>2.0.0</code> Bye</td>`,
			`<td class="reply"><code>550</code> <code>5.1.1</code> &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#34;&#39;&amp;</td>`,
			`<span class="none">not kept</span>`, // probe 3 has no transcript
			`<a href="logs?id=2">log</a>`, `<a href="logs?id=1">log</a>`,
			`<td class="num">1.5s</td>`, `<td class="num">42ms</td>`, `<td class="ok">success</td>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(body, `logs?id=3`) {
			t.Error("probe 3 links a transcript it does not have")
		}
	})
	t.Run("static targets", func(t *testing.T) {
		st := regexp.MustCompile(`(?s)<table id="static">(.*?)</table>`).FindStringSubmatch(body)
		if st == nil {
			t.Fatalf("no static table:\n%s", body)
		}
		for _, want := range []string{`<td>rcpt</td>`, `<td class="fail">failure</td>`, `2026-11-29 03:13:00 UTC`,
			`<a href="logs?id=2">log</a>`, `<td>never.test:25</td>`, `not probed yet`,
			// The hostile target: never succeeded, failing since its one probe.
			`<td class="reply"><code>550</code> <code>5.1.1</code> &lt;script&gt;`,
			`<td class="last-success"><span class="none">none since the exporter started</span></td>
<td class="failing-since"><span class="fail">2026-11-29 03:13:00 UTC</span></td>`,
			// mx4: last probe 03:17, last success 03:15, failing since 03:16.
			`<td class="reply"><code>554</code> <code>5.7.1</code> client host blocked</td><td>2026-11-29 03:17:00 UTC</td>
<td class="last-success">2026-11-29 03:15:00 UTC</td>
<td class="failing-since"><span class="fail">2026-11-29 03:16:00 UTC</span></td>`,
		} {
			if !strings.Contains(st[1], want) {
				t.Errorf("static table lacks %s:\n%s", want, st[1])
			}
		}
	})
	t.Run("reload banner", func(t *testing.T) {
		banner := regexp.MustCompile(`(?s)<div class="banner" id="reload-error" role="alert">(.*?)</div>`).FindStringSubmatch(body)
		if banner == nil {
			t.Fatalf("no reload banner while the last reload failed:\n%s", body)
		}
		for _, want := range []string{"The last configuration reload failed", "2026-11-29 03:18:00 UTC", "still running",
			"<pre>modules.default.timeout: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"} {
			if !strings.Contains(banner[1], want) {
				t.Errorf("the banner lacks %s:\n%s", want, banner[1])
			}
		}
	})
	t.Run("links and version", func(t *testing.T) {
		for _, want := range []string{`href="metrics"`, `href="config"`, `href="-/healthy"`, `id="version">Version `} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(body, "Version  (") || strings.Contains(body, "revision )") {
			t.Error("empty version or revision shown")
		}
	})
}

func TestLandingPageStates(t *testing.T) {
	tests := []struct {
		name string
		data LandingData
		want string
	}{
		{"history disabled", LandingData{Modules: []string{"default"}}, "--history.limit</code> is 0"},
		{"no probes yet", LandingData{Modules: []string{"default"}, HistoryEnabled: true}, "No probes yet."},
		{"no static targets", LandingData{Modules: []string{"default"}}, "No static targets"},
	}
	for _, tc := range tests {
		t.Run(tc.name+": no reload banner", func(t *testing.T) {
			page, err := NewLanding("x", "", func() LandingData { return tc.data })
			if err != nil {
				t.Fatal(err)
			}
			if _, body := landingGet(t, page, http.MethodGet, "/"); strings.Contains(body, "reload-error") {
				t.Errorf("a reload banner without a failed reload:\n%s", body)
			}
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := NewLanding("x", "", func() LandingData { return tc.data })
			if err != nil {
				t.Fatal(err)
			}
			resp, body := landingGet(t, page, http.MethodGet, "/")
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.want) {
				t.Errorf("status %d, want 200 and %q in:\n%s", resp.StatusCode, tc.want, body)
			}
		})
	}
}

func TestLandingPageRequests(t *testing.T) {
	_, page := landingFixture(t)
	tests := []struct {
		method, target string
		status         int
		emptyBody      bool
	}{
		{http.MethodGet, "/", http.StatusOK, false},
		{http.MethodHead, "/", http.StatusOK, true},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, false},
		{http.MethodGet, "/nothing-here", http.StatusNotFound, false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			resp, body := landingGet(t, page, tc.method, tc.target)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if (body == "") != tc.emptyBody {
				t.Errorf("body %d bytes, want empty %t", len(body), tc.emptyBody)
			}
		})
	}
}

func TestLogsHandler(t *testing.T) {
	h, _ := landingFixture(t)
	// A history of one gives up probe 1 when probe 2 comes.
	small := NewHistory(1, 1<<20)
	small.Add(HistoryEntry{Target: "gone", Transcript: []byte("old")})
	small.Add(HistoryEntry{Target: "kept", Transcript: []byte("new")})
	tinyBudget := NewHistory(1, 400)
	tinyBudget.Add(HistoryEntry{Target: "long", Transcript: []byte(strings.Repeat("x", 1000))})

	tests := []struct {
		name   string
		h      *History
		target string
		status int
		body   string // substring
	}{
		{"success transcript", h, "/logs?id=1", http.StatusOK, "Recent probe 1\nTarget:   mx1.test:25\nModule:   default\nTime:     2026-11-29 03:12:00 UTC\n" +
			"From:     /probe\nResult:   success, in 42ms\nReply:    221 2.0.0 Bye\n\nS: 220 mx1.test ESMTP\nprobe_success 1\n"},
		{"hostileText transcript as plain text", h, "/logs?id=2", http.StatusOK, "Recent probe 2\nTarget:   " + hostileText + "\nModule:   rcpt\n" +
			"Time:     2026-11-29 03:13:00 UTC\nFrom:     /metrics (a static target of the configuration)\n" +
			"Result:   failure in phase rcpt (" + hostileText + "), in 1.5s\nReply:    550 5.1.1 " + hostileText + "\n\nS: 550 " + hostileText + "\n"},
		{"probe without transcript", h, "/logs?id=3", http.StatusNotFound, "no longer kept"},
		{"unknown id", h, "/logs?id=99", http.StatusNotFound, "not among the recent probes"},
		{"evicted id", small, "/logs?id=1", http.StatusNotFound, "not among the recent probes"},
		{"kept id", small, "/logs?id=2", http.StatusOK, "new"},
		{"truncated", tinyBudget, "/logs?id=1", http.StatusOK, "(the transcript was cut to fit the memory budget"},
		{"missing id", h, "/logs", http.StatusBadRequest, "id must be"},
		{"malformed id", h, "/logs?id=1x", http.StatusBadRequest, "id must be"},
		{"disabled history", NewHistory(0, 0), "/logs?id=1", http.StatusNotFound, "not among"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := landingGet(t, LogsHandler(tc.h), http.MethodGet, tc.target)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
				t.Errorf("status %d body %q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == http.StatusOK {
				if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Error("no X-Content-Type-Options: nosniff")
				}
				e, _ := tc.h.Get(idOf(t, tc.target))
				if !strings.HasPrefix(body, "Recent probe ") || !strings.HasSuffix(body, "\n\n"+string(e.Transcript)) {
					t.Errorf("body %q: want the header, a blank line, then the transcript", body)
				}
			}
		})
	}
	resp, _ := landingGet(t, LogsHandler(h), http.MethodPost, "/logs?id=1")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

// idOf is the id of a /logs?id=N URL.
func idOf(t *testing.T, target string) uint64 {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(u.Query().Get("id"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
