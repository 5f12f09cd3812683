package server

import (
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Reload reloads the configuration file; a bad file keeps the old one.
func (s *Server) Reload() error { return s.opts.Config.Reload(s.opts.ConfigFile, s.opts.Logger) }

// Routes wires every endpoint; gatherer has the exporter's own metrics.
func (s *Server) Routes(name string, gatherer prometheus.Gatherer) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle("/probe", s.Probe())
	mux.Handle("/metrics", s.Metrics(gatherer))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Healthy\n") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Ready\n") })
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := s.Reload(); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config, keeping the old one: %s", err), http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "Config reloaded\n")
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, s.opts.Config.Get().Config.String())
	})
	landing, err := NewLanding(name, "Prometheus exporter for SMTP servers", s.landingData)
	if err != nil {
		return nil, err
	}
	mux.Handle("/logs", LogsHandler(s.history))
	mux.Handle("/", landing)
	return mux, nil
}

// landingData is what the landing page shows of the running configuration
// and the recent probes.
func (s *Server) landingData() LandingData {
	set := s.opts.Config.Get()
	modules := make([]string, 0, len(set.Plans))
	for name := range set.Plans {
		modules = append(modules, name)
	}
	sort.Strings(modules)
	static := make([]StaticTarget, len(set.Static))
	for i, t := range set.Static {
		static[i] = StaticTarget{Target: t.Raw, Module: t.Plan.Name}
	}
	d := LandingData{
		Modules: modules, DefaultModule: config.DefaultModuleName,
		Static: s.history.StaticStatus(static), Recent: s.history.List(), HistoryEnabled: s.history.Enabled(),
	}
	if at, err := s.opts.Config.LastReloadError(); err != nil {
		d.ReloadError, d.ReloadFailedAt = smtp.SafeText(err.Error()), at
	}
	return d
}
