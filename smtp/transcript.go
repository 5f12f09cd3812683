package smtp

import (
	"fmt"
	"sync"
	"time"
)

// transcript delivers the lines of one Probe or ProbeMX call to the
// caller's function, one at a time: the exchanger probes of ProbeMX share it,
// so the caller needs no lock. A nil *transcript drops everything.
type transcript struct {
	mu    sync.Mutex
	fn    func(TranscriptLine)
	start time.Time
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
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fn(TranscriptLine{At: time.Since(t.start), Host: host, Dir: dir, Text: text})
}

// notef delivers a note.
func (t *transcript) notef(host, format string, args ...any) {
	if t == nil {
		return
	}
	t.emit(host, Note, fmt.Sprintf(format, args...))
}
