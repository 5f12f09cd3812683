package server

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/version"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

//go:embed landing.html
var landingHTML string

// LandingData is what the landing page shows besides name and version,
// gathered at each request.
type LandingData struct {
	// Modules are the configured modules' names, offered by the probe form.
	Modules []string
	// DefaultModule is the one selected in the form (if it is in Modules).
	DefaultModule string
	// Static are the configured targets with their last results.
	Static []StaticStatus
	// Recent are the recent probes, newest first (History.List).
	Recent []HistoryEntry
	// HistoryEnabled is false when --history.limit is 0.
	HistoryEnabled bool
	// ReloadError is the error of the last configuration reload while it
	// is the last word (no reload has succeeded since), empty otherwise;
	// ReloadFailedAt is when that reload failed.
	ReloadError    string
	ReloadFailedAt time.Time
}

// moduleOption is one <option> of the form.
type moduleOption struct {
	Name     string
	Selected bool
}

// landingPage is the template's data.
type landingPage struct {
	Name, Description            string
	Version, Revision, BuildDate string
	Modules                      []moduleOption
	Static                       []StaticStatus
	Recent                       []HistoryEntry
	HistoryEnabled               bool
	ReloadError                  string
	ReloadFailedAt               time.Time
}

type landing struct {
	name, description string
	data              func() LandingData
	tmpl              *template.Template
}

// NewLanding returns the handler of the landing page, "/": name,
// description, version, links, a banner while the last configuration
// reload has failed, a probe form with the modules to choose from (the
// readable transcript by default), the static targets with their last
// results (the deciding reply, when they last succeeded, since when they
// have been failing) and the recent probes with their deciding replies,
// each linking to its transcript (see LogsHandler, mounted at /logs). The
// page's links are relative, so it works behind a path prefix. data is
// called at each request. Other paths than "/" are answered 404.
func NewLanding(name, description string, data func() LandingData) (http.Handler, error) {
	tmpl, err := template.New("landing").Funcs(template.FuncMap{
		"when": formatTime,
		"dur":  formatDuration,
	}).Parse(landingHTML)
	if err != nil {
		return nil, fmt.Errorf("parsing the landing page template: %w", err)
	}
	return &landing{name: name, description: description, data: data, tmpl: tmpl}, nil
}

func (l *landing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d := l.data()
	page := landingPage{
		Name: l.name, Description: l.description,
		Version: versionOr(version.Version, "unknown"), Revision: versionOr(version.GetRevision(), "unknown"),
		BuildDate: version.BuildDate,
		Static:    d.Static, Recent: d.Recent, HistoryEnabled: d.HistoryEnabled,
		ReloadError: d.ReloadError, ReloadFailedAt: d.ReloadFailedAt,
	}
	for _, m := range d.Modules {
		page.Modules = append(page.Modules, moduleOption{Name: m, Selected: m == d.DefaultModule})
	}
	var buf bytes.Buffer
	if err := l.tmpl.Execute(&buf, page); err != nil {
		http.Error(w, "rendering the landing page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	// Nothing on the page runs script or loads anything; server-controlled
	// text (targets, reasons) is escaped, and this is the second fence.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

func versionOr(v, fallback string) string {
	if v == "" {
		return fallback
	}
	return v
}

// formatTime shows a probe's time in UTC to the second.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// formatDuration shows a probe's duration to the millisecond.
func formatDuration(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// LogsHandler serves a recent probe's transcript as text/plain:
// /logs?id=N, after a header saying what it is: target, module, time,
// where the probe came from (/probe or /metrics) and its result. An ID that
// is not a number is answered 400; an unknown ID, or one whose probe or
// transcript is no longer kept, 404.
func LogsHandler(h *History) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
		if err != nil {
			http.Error(w, "id must be the number of a recent probe, e.g. /logs?id=3", http.StatusBadRequest)
			return
		}
		e, ok := h.Get(id)
		if !ok {
			http.Error(w, fmt.Sprintf("probe %d is not among the recent probes kept (see --history.limit)", id), http.StatusNotFound)
			return
		}
		if e.Transcript == nil {
			http.Error(w, fmt.Sprintf("the transcript of probe %d is no longer kept (memory budget)", id), http.StatusNotFound)
			return
		}
		var body bytes.Buffer
		writeLogHeader(&body, &e)
		body.Write(e.Transcript)
		hd := w.Header()
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Content-Length", strconv.Itoa(body.Len()))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body.Bytes())
		}
	})
}

// writeLogHeader writes what /logs shows before a probe's transcript.
func writeLogHeader(b *bytes.Buffer, e *HistoryEntry) {
	from := "/probe"
	if e.Static {
		from = "/metrics (a static target of the configuration)"
	}
	result := "success"
	if !e.Success {
		result = "failure"
		if e.Phase != "" {
			result += " in phase " + e.Phase + " (" + e.Reason + ")"
		}
	}
	fmt.Fprintf(b, "Recent probe %d\n", e.ID)
	fmt.Fprintf(b, "Target:   %s\n", smtp.SafeText(e.Target))
	fmt.Fprintf(b, "Module:   %s\n", smtp.SafeText(e.Module))
	fmt.Fprintf(b, "Time:     %s\n", formatTime(e.Time))
	fmt.Fprintf(b, "From:     %s\n", from)
	fmt.Fprintf(b, "Result:   %s, in %s\n", smtp.SafeText(result), formatDuration(e.Duration))
	if rp := e.Reply; rp.Code != 0 {
		words := slices.DeleteFunc([]string{strconv.Itoa(rp.Code), rp.Enhanced, rp.Text}, func(s string) bool { return s == "" })
		fmt.Fprintf(b, "Reply:    %s\n", smtp.SafeText(strings.Join(words, " ")))
	}
	if e.Truncated {
		b.WriteString("(the transcript was cut to fit the memory budget: its head and its tail are kept)\n")
	}
	b.WriteString("\n")
}
