package collector

import (
	"io"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkStaticExposition10k measures writing 10,000 static targets'
// metrics, the way /metrics does. (Through const metrics and a registry,
// this took 927ms, 275 MB and 4.3 million allocations per scrape.)
func BenchmarkStaticExposition10k(b *testing.B) {
	res := goldenCases()["success_starttls"]
	items := make([]exposed, 10000)
	for i := range items {
		o := newOutcome(res)
		o.count(NewReplyCounters(1), "default", "t")
		items[i] = exposed{o: o, labels: []labelPair{{"module", "default"}, {"target", "127.0.0.1:" + strconv.Itoa(30000+i)}}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := writeProbeMetrics(io.Discard, items); err != nil {
			b.Fatal(err)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapSys)/(1<<20), "heapsys-MiB")
}
