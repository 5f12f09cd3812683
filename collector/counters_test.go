package collector

import (
	"testing"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

func TestReplyCounters(t *testing.T) {
	res := &smtp.Result{Phases: []smtp.PhaseResult{
		{Phase: smtp.PhaseResolve},
		{Phase: smtp.PhaseBanner, Reply: &smtp.Reply{Code: 220}},
		{Phase: smtp.PhaseEHLO, Reply: &smtp.Reply{Code: 502}},
		{Phase: smtp.PhaseEHLO, Reply: &smtp.Reply{Code: 250}},
		{Phase: smtp.PhaseData, Reply: &smtp.Reply{Code: 354}},
		{Phase: smtp.PhaseMessage, Reply: &smtp.Reply{Code: 452}},
		{Phase: smtp.PhaseQuit, Reply: &smtp.Reply{Code: 221}},
	}}
	c := NewReplyCounters(2)
	a := CounterKey{Module: "m", Target: "a"}
	if got := c.Add(a, res); got != (ReplyCounts{3, 1, 1, 1}) {
		t.Fatalf("first add = %v", got)
	}
	if got := c.Add(a, res); got != (ReplyCounts{6, 2, 2, 2}) {
		t.Fatalf("second add = %v", got)
	}
	c.Add(CounterKey{Module: "m", Target: "b"}, res)
	c.Add(a, res) // a is now the most recent
	c.Add(CounterKey{Module: "m", Target: "c"}, res)
	if c.Len() != 2 || c.Evicted() != 1 {
		t.Fatalf("len %d, evicted %d; want 2, 1", c.Len(), c.Evicted())
	}
	if got := c.Add(a, nil); got != (ReplyCounts{9, 3, 3, 3}) {
		t.Errorf("a was evicted instead of b: %v", got)
	}
	if got := c.Add(CounterKey{Module: "m", Target: "b"}, nil); got != (ReplyCounts{}) {
		t.Errorf("b should have been forgotten, has %v", got)
	}
	c.SetLimit(1)
	if c.Len() != 1 {
		t.Errorf("len after SetLimit(1) = %d", c.Len())
	}
}

// TestReplyCountersPerRow: each row of an outcome counts under the labels
// it is written with: one exchanger at two preferences (an MX set the
// probe did not deduplicate, or a preference that changed) is two series,
// neither holding the other's replies.
func TestReplyCountersPerRow(t *testing.T) {
	reply := func(codes ...int) *smtp.Result {
		res := &smtp.Result{}
		for _, c := range codes {
			res.Phases = append(res.Phases, smtp.PhaseResult{Phase: smtp.PhaseBanner, Reply: &smtp.Reply{Code: c}})
		}
		return res
	}
	o := &probe.Outcome{Target: probe.Target{Plan: &probe.Plan{Name: "mx"}, Key: "example.test"}, MXFound: 2,
		Hosts: []probe.Host{
			{Name: "mx.example.test", Preference: "10", Result: reply(220, 250)},
			{Name: "mx.example.test", Preference: "20", Result: reply(421)},
		}}
	c := NewReplyCounters(10)
	for range 2 {
		c.AddOutcome(o)
	}
	got := c.AddOutcome(o)
	if want := []ReplyCounts{{6, 0, 0, 0}, {0, 0, 3, 0}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("counts = %v, want %v", got, want)
	}
	if c.Len() != 2 {
		t.Errorf("%d series, want 2", c.Len())
	}
}
