package collector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v2"
)

// ExporterOptions configures an Exporter.
type ExporterOptions struct {
	Config *SafeConfig
	Logger log.Logger
	// TimeoutOffset is taken off the scrape timeout header, in seconds.
	TimeoutOffset float64
	// StaticOnly restricts /probe to the targets listed in the config.
	StaticOnly bool
	// MaxInFlight caps probes running at once across /probe and /metrics;
	// /probe answers 503 beyond it.
	MaxInFlight int
	// StaticConcurrency caps how many static targets one /metrics scrape
	// probes at once.
	StaticConcurrency int
	// CounterLimit bounds the reply counters kept for /probe targets.
	CounterLimit int
}

// Exporter serves /probe and /metrics, and keeps what lives across requests:
// the reply counters and the in-flight limit.
type Exporter struct {
	opts           ExporterOptions
	limiter        chan struct{}
	probeCounters  *ReplyCounters
	staticCounters *ReplyCounters
	refused        *prometheus.CounterVec
}

// Refusal reasons of smtp_exporter_probe_requests_refused_total.
var refusalReasons = []string{"bad_request", "unknown_module", "policy", "not_static", "overload"}

// NewExporter builds an Exporter and registers its own metrics with reg.
func NewExporter(o ExporterOptions, reg prometheus.Registerer) *Exporter {
	if o.MaxInFlight < 1 {
		o.MaxInFlight = 1
	}
	if o.StaticConcurrency < 1 {
		o.StaticConcurrency = 1
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	e := &Exporter{
		opts:           o,
		limiter:        make(chan struct{}, o.MaxInFlight),
		probeCounters:  NewReplyCounters(o.CounterLimit),
		staticCounters: NewReplyCounters(staticCounterLimit(o.Config.Get())),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smtp_exporter_probe_requests_refused_total",
			Help: "/probe requests answered without probing, by reason: bad_request, unknown_module, policy, not_static, overload.",
		}, []string{"reason"}),
	}
	for _, r := range refusalReasons {
		e.refused.WithLabelValues(r)
	}
	o.Config.OnLoad(func(c *Config) { e.staticCounters.SetLimit(staticCounterLimit(c)) })
	if reg != nil {
		reg.MustRegister(e.refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_probes_in_flight",
				Help: "Probes running now, across /probe and /metrics.",
			}, func() float64 { return float64(len(e.limiter)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_probes_in_flight_limit",
				Help: "The most probes that may run at once (--probe.max-in-flight).",
			}, func() float64 { return float64(cap(e.limiter)) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_reply_tracking_targets",
				Help: "Targets whose reply counters are kept for /probe (bounded by --probe.counter-limit).",
			}, func() float64 { return float64(e.probeCounters.Len()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "smtp_exporter_reply_tracking_evictions_total",
				Help: "Reply counter series forgotten, least recently probed first, to stay within the bound.",
			}, func() float64 { return float64(e.probeCounters.Evicted() + e.staticCounters.Evicted()) }),
		)
	}
	return e
}

// staticCounterLimit keeps room for every static target's counters (and
// their exchangers with mx_lookup).
func staticCounterLimit(c *Config) int {
	n := 0
	for _, t := range c.Targets {
		if m := c.Modules[t.Module]; m != nil && m.MXLookup {
			n += m.MXMaxHosts
		} else {
			n++
		}
	}
	return 2*n + 16
}

func (e *Exporter) refuse(w http.ResponseWriter, code int, reason, msg string) {
	e.refused.WithLabelValues(reason).Inc()
	level.Debug(e.opts.Logger).Log("msg", "Probe request refused", "reason", reason, "err", msg)
	http.Error(w, msg, code)
}

// ProbeHandler serves /probe?target=T&module=M[&debug=true].
func (e *Exporter) ProbeHandler() http.Handler { return http.HandlerFunc(e.serveProbe) }

func (e *Exporter) serveProbe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conf := e.opts.Config.Get()
	moduleName := q.Get("module")
	if moduleName == "" {
		moduleName = DefaultModuleName
	}
	m, ok := conf.Modules[moduleName]
	if !ok {
		e.refuse(w, http.StatusBadRequest, "unknown_module", fmt.Sprintf("unknown module %q", moduleName))
		return
	}
	target := q.Get("target")
	spec, err := newProbeSpec(m, moduleName, target)
	if err != nil {
		e.refuse(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if e.opts.StaticOnly && !conf.isStatic(target, moduleName) {
		e.refuse(w, http.StatusForbidden, "not_static", fmt.Sprintf("target %q with module %q is not in the config's targets, and /probe is restricted to them", target, moduleName))
		return
	}
	if err := conf.ProbePolicy.CheckName(spec.host); err != nil {
		e.refuse(w, http.StatusForbidden, "policy", err.Error())
		return
	}
	timeout, err := probeTimeout(r, time.Duration(m.Timeout), e.opts.TimeoutOffset)
	if err != nil {
		e.refuse(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	select {
	case e.limiter <- struct{}{}:
		defer func() { <-e.limiter }()
	default:
		e.refuse(w, http.StatusServiceUnavailable, "overload", fmt.Sprintf("%d probes are running already (--probe.max-in-flight); try again later", cap(e.limiter)))
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	spec.checkAddr = conf.ProbePolicy.CheckAddr
	debug := q.Get("debug") == "true"
	var tr *transcript
	if debug {
		tr = &transcript{}
		spec.transcript = tr.add
	}
	o := spec.run(ctx)
	if pe := o.policyError(); pe != nil {
		e.refuse(w, http.StatusForbidden, "policy", pe.Err.Error())
		return
	}
	counterTarget := target
	if !m.MXLookup {
		counterTarget = net.JoinHostPort(spec.host, strconv.Itoa(int(spec.port)))
	}
	o.count(e.probeCounters, moduleName, counterTarget)
	e.logFailures(o, moduleName, target)

	items := []exposed{{o: o}}
	if debug {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(debugOutput(tr, items, moduleName, m))
		return
	}
	if err := respond(w, r, func(out io.Writer) error { return writeProbeMetrics(out, items) }); err != nil {
		level.Debug(e.opts.Logger).Log("msg", "Error writing the probe's metrics", "target", target, "err", err)
	}
}

func (e *Exporter) logFailures(o *outcome, module, target string) {
	for _, f := range o.failures() {
		level.Debug(e.opts.Logger).Log("msg", "Probe failed", "target", target, "module", module,
			"phase", f.Phase, "reason", f.Reason, "err", f)
	}
}

// debugOutput is the answer to debug=true: transcript and explanations, the
// metrics, and the module (secrets redacted).
func debugOutput(tr *transcript, items []exposed, moduleName string, m *Module) []byte {
	var b bytes.Buffer
	b.WriteString("Probe transcript:\n")
	writeReport(&b, tr, items[0].o)
	b.WriteString("\n\nMetrics that would have been returned:\n")
	if err := writeProbeMetrics(&b, items); err != nil {
		fmt.Fprintf(&b, "error writing metrics: %v\n", err)
	}
	fmt.Fprintf(&b, "\n\nModule configuration (%s):\n", moduleName)
	if y, err := yaml.Marshal(m); err == nil {
		b.Write(y)
	}
	return b.Bytes()
}

// isStatic reports whether the config lists target with module.
func (c *Config) isStatic(target, module string) bool {
	for _, t := range c.Targets {
		if t.Target == target && t.Module == module {
			return true
		}
	}
	return false
}
