// Package server holds the exporter's HTTP handlers: /probe, /metrics,
// /config, /-/reload, the health endpoints and the landing page. They are
// a package of their own, not part of main, so that tests drive them with
// httptest and the real configuration path, and main stays flags, logger
// and serving; and not part of collector, which is only the metrics side.
// Each handler reads top to bottom: parse the request, look up the plan,
// run the probe (package probe), expose it (package collector), answer.
package server

import (
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smtp-exporter/smtp_exporter/collector"
	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

// Options configures a Server.
type Options struct {
	Config *config.SafeConfig[*probe.Set]
	// ConfigFile is reloaded by /-/reload.
	ConfigFile string
	Logger     log.Logger
	// TimeoutOffset is taken off the scrape timeout header, in seconds.
	TimeoutOffset float64
	// StaticOnly restricts /probe to the targets listed in the config.
	StaticOnly bool
	// MaxInFlight caps the connections /probe holds at once; a /probe
	// that finds none free is answered 503.
	MaxInFlight int
	// StaticConcurrency caps the static targets one /metrics scrape probes,
	// and the connections they hold, at once (capacity of their own).
	StaticConcurrency int
	// CounterLimit bounds the reply counters kept for /probe targets.
	CounterLimit int
	// HistoryLimit is how many recent probes the landing page lists
	// (--history.limit); 0 keeps none.
	HistoryLimit int
	// HistoryBytes bounds the memory of their transcripts.
	HistoryBytes int
}

// Server serves the exporter's endpoints and keeps what lives across
// requests: the reply counters and the connection capacity.
type Server struct {
	opts     Options
	conns    *probe.Pool // /probe's connections
	counters *collector.ReplyCounters
	static   *collector.Static
	refused  *prometheus.CounterVec
	history  *History
}

// Refusal reasons of smtp_exporter_probe_requests_refused_total.
var refusalReasons = []string{"bad_request", "unknown_module", "policy", "not_static", "credentials", "overload"}

// New builds a Server and registers its own metrics with reg.
func New(o Options, reg prometheus.Registerer) *Server {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	s := &Server{
		opts:     o,
		conns:    probe.NewPool(o.MaxInFlight),
		counters: collector.NewReplyCounters(o.CounterLimit),
		static:   collector.NewStatic(o.StaticConcurrency, o.Logger),
		history:  NewHistory(o.HistoryLimit, o.HistoryBytes),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smtp_exporter_probe_requests_refused_total",
			Help: "/probe requests answered without probing, by reason: bad_request, unknown_module, policy, not_static, credentials, overload.",
		}, []string{"reason"}),
	}
	for _, r := range refusalReasons {
		s.refused.WithLabelValues(r)
	}
	if set := o.Config.Get(); set != nil {
		s.static.Loaded(set)
	}
	o.Config.OnLoad(s.static.Loaded)
	if reg != nil {
		reg.MustRegister(s.refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_probes_in_flight",
				Help: "Connections /probe holds now.",
			}, func() float64 { return float64(s.conns.InUse()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_probes_in_flight_limit",
				Help: "The most connections /probe may hold at once (--probe.max-in-flight).",
			}, func() float64 { return float64(s.conns.Size()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_reply_tracking_targets",
				Help: "Targets whose reply counters are kept for /probe (bounded by --probe.counter-limit).",
			}, func() float64 { return float64(s.counters.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_history_probes",
				Help: "Recent probes kept for the landing page (bounded by --history.limit).",
			}, func() float64 { return float64(s.history.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_history_transcript_bytes",
				Help: "Bytes of the recent probes' transcripts kept (bounded by a budget of their own).",
			}, func() float64 { return float64(s.history.TranscriptBytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "smtp_exporter_history_bytes",
				Help: "Memory the recent probes take: each entry's fields, strings and transcript, and the static targets' last results.",
			}, func() float64 { return float64(s.history.Bytes()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "smtp_exporter_reply_tracking_evictions_total",
				Help: "Reply counter series forgotten, least recently probed first, to stay within the bound.",
			}, func() float64 { return float64(s.counters.Evicted() + s.static.Counters().Evicted()) }),
		)
	}
	return s
}

// writeTimeout is how long writing an answer may take once it is ready.
const writeTimeout = 30 * time.Second

// WriteTimeout is the http.Server WriteTimeout that fits the longest probe
// of c: the longest module timeout, plus the time to write the answer.
func WriteTimeout(c *config.Config) time.Duration { return c.MaxTimeout() + writeTimeout }

func (s *Server) refuse(w http.ResponseWriter, code int, reason, msg string, detail ...any) {
	s.refused.WithLabelValues(reason).Inc()
	s.debug(append([]any{"msg", "Probe request refused", "reason", reason, "err", msg}, detail...)...)
	http.Error(w, msg, code)
}

func (s *Server) debug(kv ...any) { _ = level.Debug(s.opts.Logger).Log(kv...) }
