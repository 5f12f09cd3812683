package collector

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-kit/log"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

func buildSet(t testing.TB, conf string) *probe.Set {
	t.Helper()
	c, err := config.Parse([]byte(conf), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set, err := probe.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestStaticLoadedKeepsConfigured: a reload that shrinks the targets keeps
// the counters of every target still configured, even the least recently
// probed one (the bound used to be lowered first and trimmed by recency).
func TestStaticLoadedKeepsConfigured(t *testing.T) {
	var conf strings.Builder
	conf.WriteString("modules:\n  default: {}\ntargets:\n  - target: kept.example.org\n")
	for i := range 40 {
		fmt.Fprintf(&conf, "  - target: gone%d.example.org\n", i)
	}
	s := NewStatic(4, log.NewNopLogger())
	big := buildSet(t, conf.String())
	s.Loaded(big)
	res := &smtp.Result{Phases: []smtp.PhaseResult{{Phase: smtp.PhaseBanner, Reply: &smtp.Reply{Code: 421}}}}
	// kept.example.org first, so it is the least recently counted.
	for _, tgt := range big.Static {
		s.counters.Add(CounterKey{Module: "default", Target: tgt.Key}, res)
	}
	s.Loaded(buildSet(t, "modules:\n  default: {}\ntargets:\n  - target: Kept.Example.org.\n"))
	if n := s.counters.Len(); n != 1 {
		t.Errorf("%d series after the reload, want 1", n)
	}
	if got := s.counters.Add(CounterKey{Module: "default", Target: "kept.example.org:25"}, nil); got != (ReplyCounts{0, 0, 1, 0}) {
		t.Errorf("kept.example.org's counters after the reload = %v, want its one 4xx", got)
	}
}
