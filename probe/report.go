package probe

import (
	"fmt"
	"io"
	"strings"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Transcript collects a probe's transcript lines. smtp serialises its
// calls, so Add needs no lock; read it once the probe has returned.
type Transcript struct {
	Lines []smtp.TranscriptLine
}

// Add appends a line; it is a Hooks.Transcript.
func (t *Transcript) Add(l smtp.TranscriptLine) {
	if t.Lines == nil {
		t.Lines = make([]smtp.TranscriptLine, 0, 16) // a plain dialog's lines, grown once
	}
	t.Lines = append(t.Lines, l)
}

// WriteTo writes one line per transcript line.
func (t *Transcript) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var line []byte
	for _, l := range t.Lines {
		line = append(l.AppendTo(line[:0]), '\n')
		k, err := w.Write(line)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// WriteReport writes what a person at a shell wants after the transcript:
// one plain-language explanation per non-2xx reply, and the verdict with
// each failure explained.
func WriteReport(w io.Writer, o *Outcome) {
	var explained []string
	for _, h := range o.Hosts {
		for _, p := range h.Result.Phases {
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
	verdict := "succeeded"
	if !o.Success {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "Probe %s in %.3fs.\n", verdict, o.Duration.Seconds())
	for _, h := range o.Hosts {
		if e := h.Result.Err; e != nil {
			prefix := h.tag()
			switch {
			case !o.IsMX() || h.Name != "":
			case e.Phase == PhaseMTASTS:
				prefix = "MTA-STS policy "
			default:
				prefix = "MX lookup "
			}
			fmt.Fprintln(w, "  "+prefix+strings.TrimSpace(ExplainFailure(e)))
		}
	}
}

// tag is "[mx1.example.org] " for an exchanger of an MX probe, with the
// address ("[mx1.example.org 192.0.2.1] ") under addresses: all; else "".
func (h *Host) tag() string {
	name := strings.TrimSpace(h.Name + " " + h.Address)
	if name == "" {
		return ""
	}
	return "[" + name + "] "
}
