package server

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// slowSMTP is a loopback SMTP server that greets after delay and then
// accepts everything; it counts the dialogs it was asked for.
type slowSMTP struct {
	addr    string
	dialogs atomic.Int64
}

func startSlowSMTP(t *testing.T, delay time.Duration) *slowSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowSMTP{addr: ln.Addr().String()}
	smtptest.Serve(t, ln, func(c net.Conn) {
		s.dialogs.Add(1)
		time.Sleep(delay)
		r := bufio.NewReader(c)
		c.Write([]byte("220 slow.test ESMTP\r\n"))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.EqualFold(strings.TrimSpace(line), "QUIT") {
				c.Write([]byte("221 2.0.0 Bye\r\n"))
				return
			}
			c.Write([]byte("250 2.0.0 Ok\r\n"))
		}
	})
	return s
}

// TestMetricsOverlappingScrapesShareOneRound (issue 19.4): eight /metrics
// scrapes at once, against static targets that greet after a second, with
// a 3 s scrape timeout and --static.concurrency=2, are one round of
// probes: each server sees one dialog, and every scrape reports every
// target up. Each scrape used to probe every target itself: eight dialogs
// per server, competing for two connection slots, most of them timing out.
func TestMetricsOverlappingScrapesShareOneRound(t *testing.T) {
	const scrapes = 8
	a, b := startSlowSMTP(t, time.Second), startSlowSMTP(t, time.Second)
	conf := testModules + "targets:\n  - target: " + a.addr + "\n  - target: " + b.addr + "\n"
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
		for _, addr := range []string{a.addr, b.addr} {
			want := `probe_success{module="default",target="` + addr + `"} 1`
			if codes[i] != http.StatusOK || !strings.Contains(bodies[i], want+"\n") {
				t.Errorf("scrape %d: status %d, lacks %s", i, codes[i], want)
			}
		}
	}
	if na, nb := a.dialogs.Load(), b.dialogs.Load(); na != 1 || nb != 1 {
		t.Errorf("the servers saw %d and %d dialogs, want one each", na, nb)
	}
	if n := s.history.Len(); n != 2 {
		t.Errorf("%d probes in the recent probes, want 2 (one per target)", n)
	}

	// A scrape after the round has ended is a round of its own.
	get(t, h, "/metrics", map[string]string{scrapeTimeoutHeader: "3"})
	if na, nb := a.dialogs.Load(), b.dialogs.Load(); na != 2 || nb != 2 {
		t.Errorf("after a later scrape the servers saw %d and %d dialogs, want two each", na, nb)
	}
}
