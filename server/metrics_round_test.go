package server

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestMetricsOverlappingScrapesShareOneRound (issue 19.4): eight /metrics
// scrapes at once, against static targets that greet after a second, with
// a 3 s scrape timeout and --static.concurrency=2, are one round of
// probes: each server sees one dialog, and every scrape reports every
// target up. Each scrape used to probe every target itself: eight dialogs
// per server, competing for two connection slots, most of them timing out.
func TestMetricsOverlappingScrapesShareOneRound(t *testing.T) {
	const scrapes = 8
	a, b := smtptest.Start(t, smtptest.Slow), smtptest.Start(t, smtptest.Slow)
	conf := testModules + "targets:\n  - target: " + a.Addr + "\n  - target: " + b.Addr + "\n"
	s, reg := newTestServer(t, conf, Options{StaticConcurrency: 2, HistoryLimit: 100, HistoryBytes: 1 << 20})
	h := s.Metrics(reg)
	var wg sync.WaitGroup
	bodies := make([]string, scrapes)
	codes := make([]int, scrapes)
	for i := range scrapes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i] = get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "3"})
		}()
	}
	wg.Wait()
	for i := range scrapes {
		for _, addr := range []string{a.Addr, b.Addr} {
			want := `probe_success{module="default",target="` + addr + `"} 1`
			if codes[i] != http.StatusOK || !strings.Contains(bodies[i], want+"\n") {
				t.Errorf("scrape %d: status %d, lacks %s", i, codes[i], want)
			}
		}
	}
	if na, nb := a.Accepted.Load(), b.Accepted.Load(); na != 1 || nb != 1 {
		t.Errorf("the servers saw %d and %d dialogs, want one each", na, nb)
	}
	if n := s.history.Len(); n != 2 {
		t.Errorf("%d probes in the recent probes, want 2 (one per target)", n)
	}

	// A scrape after the round has ended is a round of its own.
	get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "3"})
	if na, nb := a.Accepted.Load(), b.Accepted.Load(); na != 2 || nb != 2 {
		t.Errorf("after a later scrape the servers saw %d and %d dialogs, want two each", na, nb)
	}
}
