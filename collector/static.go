package collector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Static probes the static targets of the configuration on every scrape of
// /metrics, with connection slots of its own that /probe cannot take, and
// keeps their reply counters across scrapes and reloads. Scrapes that
// overlap share one round of probes (see Collect).
type Static struct {
	counters    *ReplyCounters
	conns       *probe.Pool
	concurrency int
	logger      log.Logger

	mu      sync.Mutex
	running *round // the round under way, nil between rounds
}

// round is one probe of every static target of set, shared by every scrape
// that arrives while it runs.
type round struct {
	set      *probe.Set
	deadline time.Time     // that of the scrape that started it; zero: none
	done     chan struct{} // closed when every probe of the round has ended

	mu       sync.Mutex
	items    []Item
	finished []bool
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

// Collect returns the items of every static target of set, in config
// order, with module and target labels, each probed within its plan's
// timeout and ctx (the scrape's deadline).
//
// Scrapes that overlap share one round: a scrape arriving while a round of
// set is under way waits for that round's results instead of probing again,
// so each target sees one probe at a time however many scrapes come, and a
// /metrics flood costs the monitored servers no more than one scrape
// (logins and test messages included). The round runs until
// the deadline of the scrape that started it, even if that scrape goes
// away; a scrape whose own deadline comes first answers with what has
// finished, the rest failing with reason timeout. A scrape of another
// configuration (after a reload) waits for the running round to end, then
// starts its own.
//
// A target that could not start before the deadline fails with reason
// timeout. observe, if not nil, is told of each probe of a round this
// scrape starts, with its transcript: once per probe, whichever scrapes
// share it.
func (s *Static) Collect(ctx context.Context, set *probe.Set, observe Observer) []Item {
	for {
		r := s.join(ctx, set, observe)
		// A round that ends by this scrape's deadline is waited for: its
		// probes end with their own failures, as they would have alone.
		expire := ctx.Done()
		if r.endsBy(ctx) {
			expire = nil
		}
		select {
		case <-r.done:
			if r.set == set {
				return r.items
			}
			// A round of the previous configuration: ours comes next.
		case <-expire:
			return s.partial(r, set)
		}
	}
}

// endsBy reports whether r ends by ctx's deadline: r has a deadline no
// later than ctx's, or ctx has none.
func (r *round) endsBy(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return !ok || (!r.deadline.IsZero() && !d.Before(r.deadline))
}

// join returns the round under way, or starts one of set.
func (s *Static) join(ctx context.Context, set *probe.Set, observe Observer) *round {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != nil {
		return s.running
	}
	r := &round{set: set, done: make(chan struct{}), items: make([]Item, len(set.Static)), finished: make([]bool, len(set.Static))}
	s.running = r
	// The round belongs to every scrape that joins it: the one starting it
	// may go away, its deadline stays.
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if d, ok := ctx.Deadline(); ok {
		cancel()
		rctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d)
		r.deadline = d
	}
	go func() {
		defer cancel()
		s.run(rctx, r, observe)
		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
		close(r.done)
	}()
	return r
}

// run probes every target of r's set, at most s.concurrency at once.
func (s *Static) run(ctx context.Context, r *round, observe Observer) {
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	for i, t := range r.set.Static {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			o := probe.NotStarted(t)
			it := s.item(o)
			r.finish(i, it)
			if observe != nil {
				observe(time.Now(), o, &probe.Transcript{}, it)
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
			it := s.item(o)
			r.finish(i, it)
			if observe != nil {
				observe(start, o, tr, it)
			}
		}()
	}
	wg.Wait()
}

// finish records the item of target i.
func (r *round) finish(i int, it Item) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items[i], r.finished[i] = it, true
}

// partial is the answer of a scrape of set whose deadline came before the
// round r ended: the items r has finished, if it is a round of set, and a
// timeout for every other target.
func (s *Static) partial(r *round, set *probe.Set) []Item {
	items := make([]Item, len(set.Static))
	done := make([]bool, len(set.Static))
	if r.set == set {
		r.mu.Lock()
		copy(items, r.items)
		copy(done, r.finished)
		r.mu.Unlock()
	}
	for i, t := range set.Static {
		if !done[i] {
			items[i] = s.item(unfinished(t))
		}
	}
	return items
}

// unfinished is the outcome of a target whose probe had not ended, or not
// started, when the scrape's deadline passed.
func unfinished(t probe.Target) *probe.Outcome {
	o := probe.NotStarted(t)
	for _, h := range o.Hosts {
		if h.Result.Err != nil {
			h.Result.Err.Err = errUnfinished
		}
	}
	return o
}

var errUnfinished = errors.New("the scrape's deadline passed before this target's probe, in a round shared with overlapping scrapes, had ended")

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
