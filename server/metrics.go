package server

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/smtp-exporter/smtp_exporter/collector"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

// Metrics serves /metrics: what gatherer has (the exporter's own metrics)
// plus one probe of every static target, run concurrently within the
// scrape's timeout. Scrapes that overlap share one round of probes (see
// collector.Static.Collect): a flood of /metrics probes each target once.
func (s *Server) Metrics(gatherer prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		timeout, err := scrapeTimeout(r, s.opts.TimeoutOffset)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		var observe collector.Observer
		if s.history.Enabled() {
			observe = s.recordStatic
		}
		items := s.static.Collect(ctx, s.opts.Config.Get(), observe)
		err = writeStreamed(w, r, collector.TextContentType, writeTimeout, func(out io.Writer) error {
			if err := s.writeRegistry(out, gatherer); err != nil {
				level.Error(s.opts.Logger).Log("msg", "Error gathering the exporter's metrics", "err", err)
			}
			return collector.WriteProbeMetrics(out, items)
		})
		if err != nil {
			s.debug("msg", "Error writing /metrics", "err", err)
		}
	})
}

// recordStatic keeps a static target's probe in the recent probes.
func (s *Server) recordStatic(start time.Time, o *probe.Outcome, tr *probe.Transcript, item collector.Item) {
	s.record(start, o, true, probeText{tr: tr, items: []collector.Item{item}})
}

// writeRegistry writes what gatherer has, in the text format. A family
// named like a probe family is left out (and logged): the probe families
// are written after it, and a family must never appear twice.
func (s *Server) writeRegistry(body io.Writer, gatherer prometheus.Gatherer) error {
	mfs, gatherErr := gatherer.Gather() // as promhttp's ContinueOnError: serve what could be gathered
	enc := expfmt.NewEncoder(body, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if collector.IsProbeFamily(mf.GetName()) {
			level.Error(s.opts.Logger).Log("msg", "A registered metric is named like a probe metric; left out", "name", mf.GetName())
			continue
		}
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return gatherErr
}
