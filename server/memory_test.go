package server

import (
	"net/http"
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
				// The answer goes to a writer that keeps only its size, as a
				// socket would: the test holds no bodies of its own.
				w := &countingWriter{header: http.Header{}}
				s.Probe().ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
				if w.code != 0 || w.n < 1000 {
					b.Errorf("probe: status %d, %d bytes", w.code, w.n)
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

// countingWriter is a ResponseWriter that counts what is written.
type countingWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *countingWriter) Header() http.Header  { return w.header }
func (w *countingWriter) WriteHeader(code int) { w.code = code }
func (w *countingWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
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
