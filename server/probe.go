package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/collector"
	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
)

// Probe serves /probe?target=T&module=M[&debug=true].
func (s *Server) Probe() http.Handler { return http.HandlerFunc(s.serveProbe) }

func (s *Server) serveProbe(w http.ResponseWriter, r *http.Request) {
	set := s.opts.Config.Get()
	q := r.URL.Query()
	moduleName := q.Get("module")
	if moduleName == "" {
		moduleName = config.DefaultModuleName
	}
	plan, ok := set.Plans[moduleName]
	if !ok {
		s.refuse(w, http.StatusBadRequest, "unknown_module", set.Config.UnknownModule(moduleName))
		return
	}
	t, err := plan.ParseTarget(q.Get("target"))
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	timeout, err := scrapeTimeout(r, s.opts.TimeoutOffset)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	static := set.IsStatic(t)
	if s.opts.StaticOnly && !static {
		s.refuse(w, http.StatusForbidden, "not_static", fmt.Sprintf("target %q with module %q is not in the config's targets, and /probe is restricted to them", t.Raw, moduleName))
		return
	}
	if !set.MayAuthenticate(t) {
		s.refuse(w, http.StatusForbidden, "credentials", fmt.Sprintf("module %q sends credentials, and target %q is neither one of its static targets nor in its auth.targets", moduleName, t.Raw))
		return
	}
	if !set.MayDeliver(t) {
		s.refuse(w, http.StatusForbidden, "credentials", fmt.Sprintf("module %q logs in to a mailbox and leaves a message there (delivery_check), and target %q is neither one of its static targets nor in its delivery_check.targets", moduleName, t.Raw))
		return
	}
	if err := set.Policy.CheckName(t.Host); err != nil {
		s.refuse(w, http.StatusForbidden, "policy", err.Error())
		return
	}
	// The probe's first connection slot is taken now, so that a /probe
	// finding none free is answered at once; further connections (MX
	// exchangers) wait for theirs within the deadline.
	if !s.conns.TryAcquire() {
		s.refuse(w, http.StatusServiceUnavailable, "overload", slotsTaken(s.conns.Size())+" (--probe.max-in-flight); try again later")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), plan.Deadline(timeout))
	defer cancel()
	debug := q.Get("debug") == "true"
	var tr *probe.Transcript
	slot := &heldSlot{pool: s.conns, held: true}
	hooks := probe.Hooks{CheckAddr: set.Policy.CheckAddr, Admit: slot.admit}
	if debug || s.history.Enabled() {
		tr = &probe.Transcript{}
		hooks.Transcript = tr.Add
	}
	start := time.Now()
	o, err := probe.Run(ctx, t, hooks)
	slot.done()
	if err != nil {
		var refused *probe.RefusedError
		if errors.As(err, &refused) {
			s.refuse(w, http.StatusForbidden, "policy", refused.Error(), "address", refused.Addr)
		} else {
			s.refuse(w, http.StatusForbidden, "policy", "target refused by probe_policy", "detail", err)
		}
		return
	}
	counts := s.counters.AddOutcome(o)
	collector.LogFailures(s.opts.Logger, o)

	items := []collector.Item{collector.NewItem(o, counts, false)}
	contentType := collector.TextContentType
	var body *bytes.Buffer
	if debug {
		// Rarely asked for, and up to a few MiB: a buffer of its own.
		body = new(bytes.Buffer)
		contentType = "text/plain; charset=utf-8"
		writeDebug(body, tr, o, items, nil)
		s.record(start, o, false, probeText{text: body.Bytes()})
	} else {
		body = getBuffer()
		defer putBuffer(body)
		if err := collector.WriteProbeMetrics(body, items); err != nil {
			s.debug("msg", "Error writing the probe's metrics", "target", t.Raw, "err", err)
		}
		s.record(start, o, false, probeText{tr: tr, items: items, metrics: body.Bytes()})
	}
	if err := writeBuffered(w, r, contentType, body.Bytes(), writeTimeout); err != nil {
		s.debug("msg", "Error writing the probe's answer", "target", t.Raw, "err", err)
	}
}

// heldSlot is an Admit hook whose first call uses the slot the handler
// already took; later calls (MX exchangers) wait for one of the pool's.
type heldSlot struct {
	pool *probe.Pool
	mu   sync.Mutex
	held bool
}

func (h *heldSlot) admit(ctx context.Context) (func(), error) {
	h.mu.Lock()
	if h.held {
		h.held = false
		h.mu.Unlock()
		return h.pool.Release, nil
	}
	h.mu.Unlock()
	return h.pool.Admit(ctx)
}

// done frees the held slot if no connection took it.
func (h *heldSlot) done() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		h.held = false
		h.pool.Release()
	}
}

// writeDebug is the answer to debug=true: the transcript, explanations and
// verdict, the metrics (metrics, when they were written already; else
// written from items), and the module (secrets redacted).
func writeDebug(b *bytes.Buffer, tr *probe.Transcript, o *probe.Outcome, items []collector.Item, metrics []byte) {
	// Sized once: a buffer grown by doubling could hold twice the answer.
	size := 16 << 10
	for _, l := range tr.Lines {
		size += len(l.Text) + len(l.Host) + 20
	}
	b.Grow(size)
	b.WriteString("Probe transcript:\n")
	_, _ = tr.WriteTo(b)
	probe.WriteReport(b, o)
	b.WriteString("\n\nMetrics that would have been returned:\n")
	if metrics != nil {
		b.Write(metrics)
	} else if err := collector.WriteProbeMetrics(b, items); err != nil {
		fmt.Fprintf(b, "error writing metrics: %v\n", err)
	}
	fmt.Fprintf(b, "\n\nModule configuration (%s):\n", o.Target.Plan.Name)
	b.Write(o.Target.Plan.ModuleYAML)
}

// slotsTaken says that every probe connection slot is taken.
func slotsTaken(n int) string {
	if n == 1 {
		return "the one probe connection slot is taken"
	}
	return fmt.Sprintf("all %d probe connection slots are taken", n)
}
