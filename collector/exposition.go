package collector

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/smtp-exporter/smtp_exporter/probe"
)

// The probe metrics are written straight into the text exposition format
// instead of through const metrics and a registry: for 10,000 static targets
// that path allocated 275 MB and spent most of a second per scrape building
// structures that were encoded once and thrown away (BenchmarkStaticExposition10k).

// TextContentType is the content type of the text exposition format.
const TextContentType = "text/plain; version=0.0.4; charset=utf-8"

// Item is one probe outcome to expose, with its reply counters and the
// labels of its target: module and target in /metrics, none in /probe.
type Item struct {
	Outcome *probe.Outcome
	counts  []ReplyCounts // per host
	labels  []labelPair
}

type labelPair struct{ name, value string }

// NewItem wraps an outcome whose replies were counted (counts per host, as
// ReplyCounters.AddOutcome returns them); withTargetLabels adds module and
// target labels, as /metrics has them.
func NewItem(o *probe.Outcome, counts []ReplyCounts, withTargetLabels bool) Item {
	it := Item{Outcome: o, counts: counts}
	if withTargetLabels {
		it.labels = []labelPair{{"module", o.Target.Plan.Name}, {"target", o.Target.Raw}}
	}
	return it
}

// WriteProbeMetrics writes the probe families of every item in the text
// format: each family once with all its samples (and not at all without
// samples), families in name order. It returns the first write error.
func WriteProbeMetrics(w io.Writer, items []Item) error {
	e := expoWriters.Get().(*expoWriter)
	defer e.release()
	e.w.Reset(w)
	for i := range families {
		f := &families[i]
		for j := range items {
			e.writeItem(f, &items[j])
		}
	}
	return e.flush()
}

// expoWriters keeps the writers, their buffer and scratch slices, between
// calls: a /probe answer is a few KiB, and a buffer of 32 KiB allocated and
// zeroed per answer was the largest cost of a probe after the syscalls.
var expoWriters = sync.Pool{New: func() any { return &expoWriter{w: bufio.NewWriterSize(nil, 32<<10)} }}

// release puts e back in the pool, holding nothing of the call's.
func (e *expoWriter) release() {
	e.w.Reset(nil)
	e.err, e.cur = nil, nil
	clear(e.labels[:cap(e.labels)])
	clear(e.hostLabels[:cap(e.hostLabels)])
	e.sink, e.host = sink{}, hostItem{}
	expoWriters.Put(e)
}

// writeItem writes the samples of family f for one item.
func (e *expoWriter) writeItem(f *family, it *Item) {
	o := it.Outcome
	e.sink = sink{e: e, f: f, item: it.labels}
	if f.perProbe != nil {
		f.perProbe(o, &e.sink)
		return
	}
	for i := range o.Hosts {
		e.host = hostItem{Host: &o.Hosts[i], outcome: o}
		if i < len(it.counts) {
			e.host.counts = it.counts[i]
		}
		e.sink.host = e.hostLabels[:0]
		if o.IsMX() {
			e.sink.host = append(e.sink.host, labelPair{"mx", e.host.Name}, labelPair{"preference", e.host.Preference})
		}
		if o.ByAddress {
			e.sink.host = append(e.sink.host, labelPair{"address", e.host.Address})
		}
		e.hostLabels = e.sink.host
		f.perHost(&e.host, &e.sink)
	}
}

// expoWriter writes the text exposition format (version 0.0.4).
type expoWriter struct {
	w   *bufio.Writer
	err error
	cur *family // the family whose header was written last
	// scratch
	labels, hostLabels []labelPair
	num                []byte
	sink               sink
	host               hostItem
}

// header is a family's HELP and TYPE lines, made once.
func (f *family) header() string {
	typ := "gauge"
	if f.counter {
		typ = "counter"
	}
	return "# HELP " + f.name + " " + escapeHelp(f.help) + "\n# TYPE " + f.name + " " + typ + "\n"
}

// sample writes one line: the family's name, the labels (sorted by name, as
// a registry writes them) and the value; before a family's first sample, its
// HELP and TYPE lines. The family's own labels always all appear, so one
// family never mixes label sets.
func (e *expoWriter) sample(f *family, item, host []labelPair, v float64, values []string) {
	if e.cur != f {
		e.str(f.headerText)
		e.cur = f
	}
	e.labels = append(append(e.labels[:0], item...), host...)
	for i, name := range f.labels {
		value := ""
		if i < len(values) {
			value = values[i]
		}
		e.labels = append(e.labels, labelPair{name, value})
	}
	sortLabels(e.labels)
	e.str(f.name)
	if len(e.labels) > 0 {
		e.byte('{')
		for i, l := range e.labels {
			if i > 0 {
				e.byte(',')
			}
			e.str(l.name)
			e.str(`="`)
			e.str(escapeLabel(l.value))
			e.byte('"')
		}
		e.byte('}')
	}
	e.byte(' ')
	e.num = appendFloat(e.num[:0], v)
	if e.err == nil {
		_, e.err = e.w.Write(e.num)
	}
	e.byte('\n')
}

// sortLabels is an insertion sort: a sample has at most eight labels.
func sortLabels(l []labelPair) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].name < l[j-1].name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func (e *expoWriter) str(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *expoWriter) byte(c byte) {
	if e.err == nil {
		e.err = e.w.WriteByte(c)
	}
}

func (e *expoWriter) flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// appendFloat formats v as the text format does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e6 && (v != 0 || !math.Signbit(v)):
		// Codes, counts, flags: 'g' writes these whole numbers as integers
		// (from 1e6 on, with an exponent), and AppendInt is much cheaper.
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

func escapeLabel(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '\n' || c == '"' {
			return labelEscaper.Replace(s)
		}
	}
	return s
}
