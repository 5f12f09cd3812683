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
