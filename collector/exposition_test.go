package collector

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// outcomeOf is a finished probe of target raw with module m: one host, no
// reply, as a probe that failed to connect leaves it.
func outcomeOf(m, raw string, success bool) *probe.Outcome {
	return &probe.Outcome{Target: probe.Target{Plan: &probe.Plan{Name: m}, Raw: raw}, Success: success, MXFound: -1,
		Hosts: []probe.Host{{Result: &smtp.Result{Host: raw}}}}
}

// TestWriteProbeMetricsEscapesLabelValues: a backslash, a double quote and a
// line feed in a label value are escaped as the text format says, and the
// value reads back as it was.
func TestWriteProbeMetricsEscapesLabelValues(t *testing.T) {
	tests := []struct{ name, target, written string }{
		{"plain", "mx.example.org:25", `target="mx.example.org:25"`},
		{"quote", `a"b`, `target="a\"b"`},
		{"backslash", `a\b`, `target="a\\b"`},
		{"line feed", "a\nb", `target="a\nb"`},
		{"all three", "\"\\\n", `target="\"\\\n"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteProbeMetrics(&b, []Item{NewItem(outcomeOf("m", tc.target, true), nil, true)}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "probe_success{module=\"m\","+tc.written+"} 1\n") {
				t.Errorf("no probe_success line with %s in\n%s", tc.written, b.String())
			}
			p := expfmt.NewTextParser(model.LegacyValidation)
			families, err := p.TextToMetricFamilies(&b)
			if err != nil {
				t.Fatalf("the exposition does not parse: %v", err)
			}
			ms := families["probe_success"].GetMetric()
			if len(ms) != 1 {
				t.Fatalf("%d probe_success samples, want 1", len(ms))
			}
			got := map[string]string{}
			for _, l := range ms[0].GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if len(got) != 2 || got["module"] != "m" || got["target"] != tc.target {
				t.Errorf("labels read back as %q, want module m and target %q", got, tc.target)
			}
		})
	}
}

// TestWriteProbeMetricsReusesNothing: the writers come from a pool, and an
// answer owes nothing to the one written before it: the same items give
// the same bytes whatever was written in between, a failed write included.
func TestWriteProbeMetricsReusesNothing(t *testing.T) {
	write := func(items ...Item) string {
		t.Helper()
		var b bytes.Buffer
		if err := WriteProbeMetrics(&b, items); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a := NewItem(outcomeOf("m", "a.example:25", true), nil, false)
	first := write(a)
	other := write(NewItem(outcomeOf("n", "b.example:25", false), nil, true), NewItem(outcomeOf("n", "c.example:25", true), nil, true))
	if first == other {
		t.Fatal("two different probes gave the same exposition")
	}
	if err := WriteProbeMetrics(failingWriter{}, []Item{a}); err == nil {
		t.Error("writing to a failing writer: no error")
	}
	if again := write(a); again != first {
		t.Errorf("the same probe, written again:\n%s\nwant\n%s", again, first)
	}
	if strings.Contains(first, "module=") || !strings.Contains(other, `module="n"`) {
		t.Errorf("labels of one answer in another:\n%s\n%s", first, other)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("the client went away") }

// TestAppendFloat: whole numbers take a shortcut; every value is written as
// strconv's shortest 'g' writes it, which is what the text format has.
func TestAppendFloat(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 2, 250, 421, 999999, -999999, 1e6, -1e6, 1234567, 10240000,
		1.7e9, 0.5, -0.25, 1e-7, 123.456, 999999.5, math.MaxInt64, math.MinInt64, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		if got, want := string(appendFloat(nil, v)), strconv.FormatFloat(v, 'g', -1, 64); got != want {
			t.Errorf("appendFloat(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{math.Inf(1): "+Inf", math.Inf(-1): "-Inf", math.NaN(): "NaN"} {
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("appendFloat(%v) = %q, want %q", v, got, want)
		}
	}
}
