package smtp

import (
	"fmt"
	"sync"
	"time"
)

// What the transcript of one probe may hold: at most
// maxTranscriptBytes of text in all; past that, server lines are dropped
// (one note says so), while the probe's own lines, whose number the dialog
// bounds, still come. No line is longer than maxTranscriptLine.
const (
	maxTranscriptBytes = 32 << 10
	maxTranscriptLine  = 4 << 10
)

// Transcript delivers the lines of one probe to the caller's function, one
// at a time: the sessions of one probe (every exchanger and address of a
// domain, a delivery check after them) share it, so the caller needs no
// lock. Every line is made safe (SafeText) and the
// whole is capped. A nil *Transcript drops everything.
type Transcript struct {
	mu        sync.Mutex
	fn        func(TranscriptLine)
	start     time.Time
	bytes     int  // text delivered so far
	truncated bool // server lines are dropped from now on
}

// NewTranscript returns a transcript whose lines are timed from start, or
// nil when fn is nil.
func NewTranscript(fn func(TranscriptLine), start time.Time) *Transcript {
	if fn == nil {
		return nil
	}
	return &Transcript{fn: fn, start: start}
}

// Emit delivers one line, timed from the start, with host as its
// TranscriptLine.Host. Server lines past the cap are dropped.
func (t *Transcript) Emit(host string, dir Direction, text string) {
	if t == nil {
		return
	}
	text = SafeText(text)
	if len(text) > maxTranscriptLine {
		text = cutUTF8(text, maxTranscriptLine) + "..."
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	at := time.Since(t.start)
	if dir == Server && (t.truncated || t.bytes+len(text) > maxTranscriptBytes) {
		if !t.truncated {
			t.truncated = true
			t.fn(TranscriptLine{At: at, Host: host, Dir: Note,
				Text: fmt.Sprintf("transcript truncated: more than %d KiB; further server lines are not shown", maxTranscriptBytes>>10)})
		}
		return
	}
	t.bytes += len(text)
	t.fn(TranscriptLine{At: at, Host: host, Dir: dir, Text: text})
}

// Notef delivers a note of the probe as a whole (not of one host).
func (t *Transcript) Notef(format string, args ...any) {
	if t == nil {
		return
	}
	t.Emit("", Note, fmt.Sprintf(format, args...))
}
