package server

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/collector"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// probeText is what a probe's debug text is made of: the text itself when
// the answer was that text (debug=true); else the transcript and items,
// with the items' metrics when the answer has written them already.
type probeText struct {
	text    []byte
	tr      *probe.Transcript
	items   []collector.Item
	metrics []byte
}

// record keeps a probe, started at start, in the recent probes: its
// summary and its debug text, written now when it was not already.
// Nothing of the outcome itself is kept: a server's certificate chain
// would otherwise stay in memory with every entry.
func (s *Server) record(start time.Time, o *probe.Outcome, static bool, t probeText) {
	if !s.history.Enabled() {
		return
	}
	e := historySummary(start, o, static)
	if t.text != nil || t.tr == nil {
		e.Transcript = t.text
		s.history.Add(e)
		return
	}
	b := debugBuffers.Get().(*bytes.Buffer)
	b.Reset()
	writeDebug(b, t.tr, o, t.items, t.metrics)
	e.Transcript = b.Bytes()
	s.history.Add(e) // copies the text
	if b.Cap() <= maxPooledDebugBuffer {
		debugBuffers.Put(b)
	}
}

// debugBuffers hold the debug text of a probe while the history copies
// it; buffers larger than maxPooledDebugBuffer are left to the collector.
var debugBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledDebugBuffer = 256 << 10

// historySummary is the recent probes' entry of o, without its text: the
// failure shown, and the reply that decided, are the first failed host's
// (the first host's when none failed).
func historySummary(start time.Time, o *probe.Outcome, static bool) HistoryEntry {
	e := HistoryEntry{Time: start, Target: o.Target.Raw, Module: o.Target.Plan.Name, Static: static,
		Success: o.Success, Duration: o.Duration}
	var decided *smtp.Result
	for _, h := range o.Hosts {
		if h.Result.Err != nil && !o.Success {
			decided = h.Result
			e.Phase, e.Reason = string(h.Result.Err.Phase), string(h.Result.Err.Reason)
			break
		}
	}
	if decided == nil && len(o.Hosts) > 0 {
		decided = o.Hosts[0].Result
	}
	if decided != nil {
		e.Reply = historyReply(decided.DecidingReply())
	}
	return e
}

// historyReply is r as the landing page shows it: code, enhanced code,
// and the server's words without that code, made safe and cut to
// MaxReplyText bytes on a character boundary.
func historyReply(r *smtp.Reply) HistoryReply {
	if r == nil {
		return HistoryReply{}
	}
	out := HistoryReply{Code: r.Code, Enhanced: r.Enhanced.String()}
	var b strings.Builder
	for _, line := range r.Lines {
		if out.Enhanced != "" {
			if rest, ok := strings.CutPrefix(strings.TrimPrefix(line, "#"), out.Enhanced); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
				line = rest
			}
		}
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(" / ")
		}
		b.WriteString(line)
		if b.Len() > MaxReplyText {
			break
		}
	}
	text := smtp.SafeText(b.String())
	if len(text) > MaxReplyText {
		text = strings.ToValidUTF8(text[:MaxReplyText-3], "") + "..."
	}
	out.Text = text
	return out
}
