package collector

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
		reg := prometheus.NewRegistry()
		reg.MustRegister(&staticCollector{ctx: ctx, e: e, conf: e.opts.Config.Get()})
		promhttp.HandlerFor(prometheus.Gatherers{gatherer, reg}, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      promLogger{e},
		}).ServeHTTP(w, r)
	})
}

// staticCollector probes every static target of one config, bound to one
// scrape's context.
type staticCollector struct {
	ctx  context.Context
	e    *Exporter
	conf *Config
}

var _ prometheus.Collector = (*staticCollector)(nil)

// Describe sends nothing: the collector is unchecked, its series vary.
func (*staticCollector) Describe(chan<- *prometheus.Desc) {}

// errNotStarted fails a target whose probe could not start before the
// scrape's deadline (every slot was busy until then).
var errNotStarted = errors.New("the scrape's deadline passed before this probe could start")

// Collect probes the targets, at most StaticConcurrency at once and within
// the exporter's in-flight limit, and sends each one's metrics as it ends.
func (c *staticCollector) Collect(ch chan<- prometheus.Metric) {
	sem := make(chan struct{}, c.e.opts.StaticConcurrency)
	var wg sync.WaitGroup
	for i := range c.conf.Targets {
		t := &c.conf.Targets[i]
		m := c.conf.Modules[t.Module]
		spec := probeSpec{module: m, moduleName: t.Module, target: t.Target, host: t.host, port: t.port}
		if !c.acquire(sem) {
			c.emit(ch, &spec, notStarted(&spec))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.release(sem)
			ctx, cancel := context.WithTimeout(c.ctx, time.Duration(m.Timeout))
			defer cancel()
			c.emit(ch, &spec, spec.run(ctx))
		}()
	}
	wg.Wait()
}

// acquire takes a slot of this scrape and of the exporter-wide limit, or
// gives up when the scrape's context ends.
func (c *staticCollector) acquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
	case <-c.ctx.Done():
		return false
	}
	select {
	case c.e.limiter <- struct{}{}:
		return true
	case <-c.ctx.Done():
		<-sem
		return false
	}
}

func (c *staticCollector) release(sem chan struct{}) {
	<-c.e.limiter
	<-sem
}

func (c *staticCollector) emit(ch chan<- prometheus.Metric, s *probeSpec, o *outcome) {
	o.count(c.e.staticCounters, s.moduleName, s.target)
	c.e.logFailures(o, s.moduleName, s.target)
	d := staticProbeDescs
	if s.module.MXLookup {
		d = staticProbeMXDescs
	}
	o.collect(ch, d, s.moduleName, s.target)
}

// notStarted is the outcome of a probe that never started.
func notStarted(s *probeSpec) *outcome {
	err := &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonTimeout, Err: errNotStarted}
	if s.module.MXLookup {
		return newMXOutcome(&smtp.MXResult{Domain: s.host, Err: err}, s.module.MXSuccess)
	}
	return newOutcome(&smtp.Result{Host: s.host, Port: s.port, Err: err})
}

// promLogger sends promhttp's errors to the exporter's logger.
type promLogger struct{ e *Exporter }

func (l promLogger) Println(v ...any) {
	level.Error(l.e.opts.Logger).Log("msg", "Error serving /metrics", "err", v)
}
