package collector

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

// BenchmarkStaticExposition10k measures writing 10,000 static targets'
// metrics, the way /metrics does. (Through const metrics and a registry,
// this took 927ms, 275 MB and 4.3 million allocations per scrape.)
func BenchmarkStaticExposition10k(b *testing.B) {
	set := buildSet(b, "modules:\n  default: {helo_name: probe.test}\n")
	tgt, _ := set.Plans["default"].ParseTarget(smtptest.Start(b, smtptest.OK).Addr)
	o, _ := probe.Run(context.Background(), tgt, probe.Hooks{})
	counts := NewReplyCounters(1).AddOutcome(o)
	items := make([]Item, 10000)
	for i := range items {
		oi := *o
		oi.Target.Raw = "127.0.0.1:" + strconv.Itoa(30000+i)
		items[i] = NewItem(&oi, counts, true)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteProbeMetrics(io.Discard, items); err != nil {
			b.Fatal(err)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapSys)/(1<<20), "heapsys-MiB")
}
