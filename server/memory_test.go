package server

import (
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// BenchmarkConcurrentDebugProbesMaximalReplies runs 1,000 /probe requests
// with debug=true at once against a server that sends the most a client
// reads in every reply (128 lines of 4 KiB), and reports the peak heap in
// use and the process's peak RSS (VmHWM, the fake server and the test
// included). The README's "Performance" has the figure; issue 11 asked for
// under 256 MiB.
func BenchmarkConcurrentDebugProbesMaximalReplies(b *testing.B) {
	const concurrent = 1000
	srv := smtptest.Start(b, smtptest.Maximal)
	conf := "modules:\n  default: {helo_name: probe.test, timeout: 60s, mail_from: a@example.org, rcpt_to: [b@example.org]}\n"
	s, _ := newTestServer(b, conf, Options{MaxInFlight: concurrent})
	url := probeURL(srv.Addr, "", "debug", "true")
	var peakHeap uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			peakHeap = max(peakHeap, m.HeapInuse)
		}
	}()
	for b.Loop() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range concurrent {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := httptest.NewRecorder()
				s.Probe().ServeHTTP(rec, httptest.NewRequest("GET", url, nil))
				if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Probe transcript:") {
					b.Errorf("probe: %d", rec.Code)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	close(stop)
	<-sampled
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(vmHWM()/(1<<20), "peak-RSS-MiB")
}

// vmHWM is the process's peak resident set size in bytes.
func vmHWM() float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}
