package server

import (
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/smtp-exporter/smtp_exporter/config"
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
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        name,
		Description: "Prometheus exporter for SMTP servers",
		Version:     version.Info(),
		Form: web.LandingForm{
			Action: "/probe",
			Inputs: []web.LandingFormInput{
				{Label: "Target", Type: "text", Name: "target", Placeholder: "mx.example.org:25"},
				{Label: "Module", Type: "text", Name: "module", Placeholder: config.DefaultModuleName, Value: config.DefaultModuleName},
				{Label: "Debug", Type: "checkbox", Name: "debug", Value: "true"},
			},
		},
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics", Description: "The exporter's own metrics and every static target"},
			{Address: "/config", Text: "Configuration", Description: "The running configuration, secrets redacted"},
			{Address: "/-/healthy", Text: "Health", Description: "200 when up"},
		},
	})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", landing)
	return mux, nil
}
