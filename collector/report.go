package collector

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// transcript collects a probe's transcript lines; concurrent MX host probes
// may add to it at once.
type transcript struct {
	mu    sync.Mutex
	lines []smtp.TranscriptLine
}

func (t *transcript) add(l smtp.TranscriptLine) {
	t.mu.Lock()
	t.lines = append(t.lines, l)
	t.mu.Unlock()
}

// writeReport writes what a person at a shell wants: the transcript (when t
// is not nil), one plain-language explanation per non-2xx reply, and the
// verdict.
func writeReport(w io.Writer, t *transcript, o *outcome) {
	if t != nil {
		t.mu.Lock()
		for _, l := range t.lines {
			fmt.Fprintln(w, l.String())
		}
		t.mu.Unlock()
	}

	var explained []string
	for _, h := range o.hosts {
		for _, p := range h.res.Phases {
			if p.Reply != nil && p.Reply.Class() != 2 {
				explained = append(explained, h.tag()+string(p.Phase)+": "+smtp.Explain(p.Reply))
			}
		}
	}
	if len(explained) > 0 {
		fmt.Fprintln(w, "\nReplies explained:")
		for _, e := range explained {
			fmt.Fprintln(w, "  "+e)
		}
	}

	fmt.Fprintln(w)
	if o.success {
		fmt.Fprintf(w, "Probe succeeded in %.3fs.\n", o.duration.Seconds())
	} else {
		fmt.Fprintf(w, "Probe FAILED in %.3fs.\n", o.duration.Seconds())
	}
	if o.lookupErr != nil {
		fmt.Fprintln(w, "  MX lookup "+smtp.ExplainFailure(o.lookupErr))
	}
	for _, h := range o.hosts {
		if e := h.res.Err; e != nil {
			fmt.Fprintln(w, "  "+h.tag()+strings.TrimSpace(smtp.ExplainFailure(e)))
		}
	}
}

// tag is "[mx1.example.org] " for an exchanger of an MX probe, else "".
func (h *hostOutcome) tag() string {
	if h.name == "" {
		return ""
	}
	return "[" + h.name + "] "
}
