package collector

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// MetricsHandler serves /metrics: what gatherer has (the exporter's own
// metrics) plus one probe of every static target, run concurrently within
// the scrape's timeout.
func (e *Exporter) MetricsHandler(gatherer prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if d, ok, err := scrapeTimeout(r, e.opts.TimeoutOffset); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		} else if ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		items := e.probeStatic(ctx, e.opts.Config.Get())
		mfs, err := gatherer.Gather()
		if err != nil {
			// As promhttp's ContinueOnError: serve what could be gathered.
			level.Error(e.opts.Logger).Log("msg", "Error gathering the exporter's metrics", "err", err)
		}
		err = respond(w, r, func(out io.Writer) error {
			enc := expfmt.NewEncoder(out, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					return err
				}
			}
			return writeProbeMetrics(out, items)
		})
		if err != nil {
			level.Debug(e.opts.Logger).Log("msg", "Error writing /metrics", "err", err)
		}
	})
}

// errNotStarted fails a target whose probe could not start before the
// scrape's deadline (every slot was busy until then).
var errNotStarted = errors.New("the scrape's deadline passed before this probe could start")

// probeStatic probes every static target of c, at most StaticConcurrency at
// once and within the exporter-wide in-flight limit, and returns their
// outcomes in config order with module and target labels.
func (e *Exporter) probeStatic(ctx context.Context, c *Config) []exposed {
	items := make([]exposed, len(c.Targets))
	sem := make(chan struct{}, e.opts.StaticConcurrency)
	var wg sync.WaitGroup
	for i := range c.Targets {
		t := &c.Targets[i]
		spec := t.spec
		items[i].labels = []labelPair{{"module", t.Module}, {"target", t.Target}}
		if !e.acquire(ctx, sem) {
			items[i].o = e.finish(&spec, notStarted(&spec))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer e.release(sem)
			pctx, cancel := context.WithTimeout(ctx, time.Duration(spec.module.Timeout))
			defer cancel()
			items[i].o = e.finish(&spec, spec.run(pctx))
		}()
	}
	wg.Wait()
	return items
}

// acquire takes a slot of this scrape and of the exporter-wide limit, or
// gives up when the scrape's context ends.
func (e *Exporter) acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	select {
	case e.limiter <- struct{}{}:
		return true
	case <-ctx.Done():
		<-sem
		return false
	}
}

func (e *Exporter) release(sem chan struct{}) {
	<-e.limiter
	<-sem
}

// finish counts a static target's replies and logs its failures.
func (e *Exporter) finish(s *probeSpec, o *outcome) *outcome {
	o.count(e.staticCounters, s.moduleName, s.target)
	e.logFailures(o, s.moduleName, s.target)
	return o
}

// notStarted is the outcome of a probe that never started.
func notStarted(s *probeSpec) *outcome {
	err := &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonTimeout, Err: errNotStarted}
	if s.module.MXLookup {
		return newMXOutcome(&smtp.MXResult{Domain: s.host, Err: err}, s.module.MXSuccess)
	}
	return newOutcome(&smtp.Result{Host: s.host, Port: s.port, Err: err})
}
