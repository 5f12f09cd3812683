package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
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

// TestStaticRoundSharedWithinEachDeadline: a scrape joining a round and
// whose deadline comes first answers at its own deadline with what has
// finished (the quick target's success) and a timeout for the probe still
// running (the tarpit's), which it does not start again; the scrape that
// started the round gets every result.
func TestStaticRoundSharedWithinEachDeadline(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	tarpit := smtptest.Start(t, smtptest.Tarpit)
	set := buildSet(t, "modules:\n  default: {helo_name: probe.test, timeout: 10s}\ntargets:\n  - target: "+ok.Addr+"\n  - target: "+tarpit.Addr+"\n")
	s := NewStatic(4, log.NewNopLogger())
	s.Loaded(set)

	long, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	first := make(chan []Item)
	go func() { first <- s.Collect(long, set, nil) }()
	for tarpit.Accepted.Load() == 0 || ok.Accepted.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	short, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	start := time.Now()
	joined := s.Collect(short, set, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the joining scrape answered after %s, past its 1 s deadline", d)
	}
	if len(joined) != 2 || !joined[0].Outcome.Success || joined[1].Outcome.Success {
		t.Fatalf("joining scrape: %d items, want the quick target's success and the tarpit's failure", len(joined))
	}
	if f := joined[1].Outcome.Failures(); len(f) != 1 || f[0].Reason != smtp.ReasonTimeout || !errors.Is(f[0], errUnfinished) {
		t.Errorf("the unfinished probe: %v, want a timeout saying it was still running", f)
	}
	all := <-first
	if f := all[1].Outcome.Failures(); len(f) != 1 || f[0].Reason != smtp.ReasonTimeout || errors.Is(f[0], errUnfinished) {
		t.Errorf("the round's own tarpit probe: %v, want its own timeout", f)
	}
	if !all[0].Outcome.Success || all[0].Outcome != joined[0].Outcome {
		t.Error("the two scrapes do not share the quick target's probe")
	}
	if n, m := ok.Accepted.Load(), tarpit.Accepted.Load(); n != 1 || m != 1 {
		t.Errorf("%d and %d connections, want one each", n, m)
	}
}

// TestStaticRoundOfAnotherConfiguration: a scrape after a reload does not
// take the results of a round of the old configuration: it waits for that
// round to end (one probe per target at a time), then probes its own.
func TestStaticRoundOfAnotherConfiguration(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	tarpit := smtptest.Start(t, smtptest.Tarpit)
	old := buildSet(t, "modules:\n  default: {helo_name: probe.test, timeout: 10s}\ntargets:\n  - target: "+tarpit.Addr+"\n")
	cur := buildSet(t, "modules:\n  default: {helo_name: probe.test, timeout: 10s}\ntargets:\n  - target: "+ok.Addr+"\n")
	s := NewStatic(4, log.NewNopLogger())

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	first := make(chan []Item)
	go func() { first <- s.Collect(ctx, old, nil) }()
	for tarpit.Accepted.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	items := s.Collect(t.Context(), cur, nil)
	if len(items) != 1 || items[0].Outcome.Target.Raw != ok.Addr || !items[0].Outcome.Success {
		t.Errorf("the new configuration's scrape: %d items, want %s up", len(items), ok.Addr)
	}
	<-first
	if n := ok.Accepted.Load(); n != 1 {
		t.Errorf("%d connections to the new target, want 1", n)
	}
}
