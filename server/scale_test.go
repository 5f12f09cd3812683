package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// BenchmarkStaticScrapeHistory measures one /metrics scrape of 1,000 static
// targets (one fake server), without and with the recent probes' history,
// which records every probe's transcript: what --history.limit costs.
func BenchmarkStaticScrapeHistory(b *testing.B) {
	srv := smtptest.Start(b, smtptest.OK)
	var conf strings.Builder
	conf.WriteString("modules:\n")
	for i := range 1000 {
		fmt.Fprintf(&conf, "  m%d: {helo_name: probe.test}\n", i)
	}
	conf.WriteString("targets:\n")
	for i := range 1000 {
		fmt.Fprintf(&conf, "  - {target: %q, module: m%d}\n", srv.Addr, i)
	}
	for _, limit := range []int{0, 100} {
		b.Run(fmt.Sprint("history=", limit), func(b *testing.B) {
			s, reg := newTestServer(b, conf.String(), Options{HistoryLimit: limit, HistoryBytes: 8 << 20, StaticConcurrency: 256})
			h := s.Metrics(reg)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// BenchmarkProbeHistory measures one /probe (without debug=true) against a
// fake server, without and with the recent probes' history, which writes
// the probe's debug text when it ends: what --history.limit costs /probe.
func BenchmarkProbeHistory(b *testing.B) {
	srv := smtptest.Start(b, smtptest.OK)
	for _, limit := range []int{0, 100} {
		b.Run(fmt.Sprint("history=", limit), func(b *testing.B) {
			s, _ := newTestServer(b, "modules:\n  default: {helo_name: probe.test}\n", Options{HistoryLimit: limit, HistoryBytes: 8 << 20})
			h := s.Probe()
			url := probeURL(srv.Addr, "default")
			b.ReportAllocs()
			for b.Loop() {
				w := &countingWriter{header: http.Header{}}
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
				if w.code != 0 || w.n == 0 {
					b.Fatalf("status %d, %d bytes", w.code, w.n)
				}
			}
		})
	}
}
