package collector

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Static probes the static targets of the configuration on every scrape of
// /metrics, with connection slots of its own that /probe cannot take, and
// keeps their reply counters across scrapes and reloads.
type Static struct {
	counters    *ReplyCounters
	conns       *probe.Pool
	concurrency int
	logger      log.Logger
}

// NewStatic returns a collector that probes at most concurrency static
// targets, and holds at most concurrency connections, at once.
func NewStatic(concurrency int, logger log.Logger) *Static {
	return &Static{counters: NewReplyCounters(16), conns: probe.NewPool(concurrency),
		concurrency: max(concurrency, 1), logger: logger}
}

// Counters are the static targets' reply counters.
func (s *Static) Counters() *ReplyCounters { return s.counters }

// Loaded adapts the counters to a new configuration: the series of targets
// no longer configured are forgotten, every other one is kept.
func (s *Static) Loaded(set *probe.Set) {
	keep := make(map[[2]string]bool, len(set.Static))
	n := 0
	for _, t := range set.Static {
		keep[[2]string{t.Plan.Name, t.Key}] = true
		hosts := 1
		if t.Plan.MX != nil {
			hosts = t.Plan.MX.MaxHosts
		}
		if t.Plan.AllAddresses {
			hosts *= smtp.MaxAddresses
		}
		n += hosts
	}
	s.counters.Retain(func(k CounterKey) bool { return keep[[2]string{k.Module, k.Target}] })
	// Room for every series, with slack for exchangers that change.
	s.counters.SetLimit(2*n + 16)
}

// Observer is told of each static probe: when it started, its outcome, its
// transcript and its item. It is called concurrently.
type Observer func(start time.Time, o *probe.Outcome, tr *probe.Transcript, item Item)

// Collect probes every static target of set, each within its plan's timeout
// and ctx (the scrape's deadline), and returns their items in config order,
// with module and target labels. A target that could not start before the
// deadline fails with reason timeout. observe, if not nil, is told of each
// probe, with its transcript.
func (s *Static) Collect(ctx context.Context, set *probe.Set, observe Observer) []Item {
	items := make([]Item, len(set.Static))
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for i, t := range set.Static {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			o := probe.NotStarted(t)
			items[i] = s.item(o)
			if observe != nil {
				observe(time.Now(), o, &probe.Transcript{}, items[i])
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, t.Plan.Timeout)
			defer cancel()
			hooks := probe.Hooks{Admit: s.conns.Admit} // static targets pass no policy
			var tr *probe.Transcript
			if observe != nil {
				tr = &probe.Transcript{}
				hooks.Transcript = tr.Add
			}
			start := time.Now()
			o, _ := probe.Run(pctx, t, hooks)
			items[i] = s.item(o)
			if observe != nil {
				observe(start, o, tr, items[i])
			}
		}()
	}
	wg.Wait()
	return items
}

// item counts an outcome's replies and logs its failures.
func (s *Static) item(o *probe.Outcome) Item {
	LogFailures(s.logger, o)
	return NewItem(o, s.counters.AddOutcome(o), true)
}

// LogFailures logs each failure of o at debug level.
func LogFailures(logger log.Logger, o *probe.Outcome) {
	for _, f := range o.Failures() {
		level.Debug(logger).Log("msg", "Probe failed", "target", o.Target.Raw, "module", o.Target.Plan.Name,
			"phase", f.Phase, "reason", f.Reason, "err", f)
	}
}
