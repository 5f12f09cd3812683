package smtp

import (
	"fmt"
	"sync"
	"time"
)

// What the transcript of one Probe or ProbeMX call may hold: at most
// maxTranscriptBytes of text in all; past that, server lines are dropped
// (one note says so), while the probe's own lines, whose number the dialog
// bounds, still come. No line is longer than maxTranscriptLine.
const (
	maxTranscriptBytes = 32 << 10
	maxTranscriptLine  = 4 << 10
)

// transcript delivers the lines of one Probe or ProbeMX call to the
// caller's function, one at a time: the exchanger probes of ProbeMX share it,
// so the caller needs no lock. Every line is made safe (SafeText) and the
// whole is capped. A nil *transcript drops everything.
type transcript struct {
	mu        sync.Mutex
	fn        func(TranscriptLine)
	start     time.Time
	bytes     int  // text delivered so far
	truncated bool // server lines are dropped from now on
}

// newTranscript returns nil when fn is nil.
func newTranscript(fn func(TranscriptLine), start time.Time) *transcript {
	if fn == nil {
		return nil
	}
	return &transcript{fn: fn, start: start}
}

// emit delivers one line, timed from the start of the call.
func (t *transcript) emit(host string, dir Direction, text string) {
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
	if dir == Server && t.bytes+len(text) > maxTranscriptBytes {
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

// notef delivers a note of the call itself (not of one exchanger).
func (t *transcript) notef(format string, args ...any) {
	if t == nil {
		return
	}
	t.emit("", Note, fmt.Sprintf(format, args...))
}
