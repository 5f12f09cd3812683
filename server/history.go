package server

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// HistoryEntry is one probe as the landing page lists it.
type HistoryEntry struct {
	// ID is given by History.Add; it names the entry in /logs?id=N.
	ID uint64
	// Time is when the probe started (Add sets it to now when zero).
	Time time.Time
	// Target and Module are what was probed with what.
	Target, Module string
	// Static is true for a probe of a configured target run by a /metrics
	// scrape, false for /probe.
	Static bool
	// Success is the probe's probe_success.
	Success bool
	// Phase and Reason are the failure's phase and reason; empty on success.
	Phase, Reason string
	// Duration is the whole probe.
	Duration time.Duration
	// Transcript is the debug text: the SMTP transcript, then the metrics.
	// List leaves it nil; Get returns a copy.
	Transcript []byte
	// TranscriptSize is the number of transcript bytes kept, 0 when none is
	// (none was given, or it was dropped to stay within the memory budget).
	// Set by History.
	TranscriptSize int
	// Truncated is true when the kept transcript was cut to fit the budget.
	// Set by History.
	Truncated bool
	// Render, when set instead of Transcript, makes the transcript when it
	// is asked for (Get): a probe keeps its own data, not text, so the many
	// probes that are never looked at cost no rendering. Size estimates the
	// memory that data takes, for the budget. Add keeps Render; callers
	// must not change what it reads.
	Render func() []byte
	Size   int
}

// History keeps the most recent probes and their transcripts in memory,
// within a count limit and a byte budget, safe for concurrent use.
//
// When the count limit is reached, the probe given up is the oldest
// successful one that is not among the newest half of the history; only
// when there is none is the oldest probe given up. So the newest limit/2
// probes are always listed, and failed probes stay longer than successful
// ones: the failure at 03:12 is still there in the morning.
//
// Transcripts together take at most the byte budget. One transcript alone
// is cut to a quarter of it (its head and its tail are kept: the dialog
// starts at the head, the failure and the metrics are at the tail); beyond
// the budget, transcripts are dropped, their entries staying listed: those
// of successful probes first (oldest first, the newest probe's last), then
// those of failed ones, oldest first.
//
// It also remembers the last result of every static target (see
// StaticStatus), whatever the limit.
type History struct {
	limit    int
	maxBytes int

	mu      sync.Mutex
	nextID  uint64
	entries []HistoryEntry // oldest first
	bytes   int            // transcript bytes kept
	static  map[staticKey]HistoryEntry
}

type staticKey struct{ target, module string }

// NewHistory returns a History that keeps at most limit probes and at most
// maxTranscriptBytes bytes of transcripts. A limit of 0 (or less) keeps no
// probes; a budget of 0 (or less) keeps no transcripts.
func NewHistory(limit, maxTranscriptBytes int) *History {
	return &History{
		limit:    max(limit, 0),
		maxBytes: max(maxTranscriptBytes, 0),
		nextID:   1,
		static:   map[staticKey]HistoryEntry{},
	}
}

// Enabled reports whether the history keeps probes at all, so a handler can
// skip building a transcript nobody will read.
func (h *History) Enabled() bool { return h != nil && h.limit > 0 }

// Add records a probe and returns its ID (0 when the history is disabled).
// The transcript is copied.
func (h *History) Add(e HistoryEntry) uint64 {
	if h == nil {
		return 0
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Success {
		e.Phase, e.Reason = "", ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.Static {
		last := e
		last.Transcript = nil
		last.TranscriptSize, last.Truncated = 0, false
		if h.limit > 0 {
			last.ID = h.nextID
		} else {
			last.ID = 0
		}
		h.static[staticKey{e.Target, e.Module}] = last
	}
	if h.limit == 0 {
		return 0
	}
	e.ID = h.nextID
	h.nextID++
	if e.Render != nil {
		e.Transcript, e.TranscriptSize = nil, e.Size
	} else {
		e.Transcript, e.Truncated = h.fit(e.Transcript)
		e.TranscriptSize = len(e.Transcript)
	}
	h.entries = append(h.entries, e)
	h.bytes += e.TranscriptSize
	for len(h.entries) > h.limit {
		i := h.victim()
		h.bytes -= h.entries[i].TranscriptSize
		h.entries = slices.Delete(h.entries, i, i+1)
	}
	for h.bytes > h.maxBytes {
		i := h.transcriptVictim()
		if i < 0 {
			break
		}
		h.bytes -= h.entries[i].TranscriptSize
		h.entries[i].Transcript, h.entries[i].TranscriptSize, h.entries[i].Truncated, h.entries[i].Render = nil, 0, false, nil
	}
	return e.ID
}

// fit copies t, cut to a quarter of the budget if it is longer.
func (h *History) fit(t []byte) ([]byte, bool) {
	if len(t) == 0 {
		return nil, false
	}
	perEntry := h.maxBytes / 4
	if len(t) <= perEntry {
		return append([]byte(nil), t...), false
	}
	marker := fmt.Appendf(nil, "\n[... %d bytes of this transcript not kept ...]\n", len(t))
	room := perEntry - len(marker)
	if room <= 0 {
		return nil, false
	}
	head := room / 2
	tail := room - head
	out := make([]byte, 0, perEntry)
	out = append(out, t[:head]...)
	out = append(out, marker...)
	out = append(out, t[len(t)-tail:]...)
	return out, true
}

// keepNewest is how many of the newest entries are never given up for an
// older one.
func (h *History) keepNewest() int { return max(h.limit/2, 1) }

// victim is the index of the entry to give up: the oldest successful one
// outside the newest half, else the oldest.
func (h *History) victim() int {
	end := len(h.entries) - h.keepNewest()
	for i := 0; i < end; i++ {
		if h.entries[i].Success {
			return i
		}
	}
	return 0
}

// transcriptVictim is the index of the entry whose transcript goes next:
// the oldest successful one but the newest entry, else the oldest; -1 if
// no entry has one.
func (h *History) transcriptVictim() int {
	for i := 0; i < len(h.entries)-1; i++ {
		if h.entries[i].Success && h.entries[i].TranscriptSize > 0 {
			return i
		}
	}
	for i := range h.entries {
		if h.entries[i].TranscriptSize > 0 {
			return i
		}
	}
	return -1
}

// Len is the number of probes kept.
func (h *History) Len() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

// TranscriptBytes is the memory the kept transcripts take.
func (h *History) TranscriptBytes() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytes
}

// List returns the kept probes, newest first, without their transcripts.
func (h *History) List() []HistoryEntry {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HistoryEntry, len(h.entries))
	for i, e := range h.entries {
		e.Transcript, e.Render = nil, nil
		out[len(out)-1-i] = e
	}
	return out
}

// Get returns the probe with this ID, its transcript (made now for an
// entry with Render; nil when it was dropped), and whether the probe is
// still kept.
func (h *History) Get(id uint64) (HistoryEntry, bool) {
	if h == nil {
		return HistoryEntry{}, false
	}
	h.mu.Lock()
	// IDs grow with the index: binary search.
	i := sort.Search(len(h.entries), func(i int) bool { return h.entries[i].ID >= id })
	if i == len(h.entries) || h.entries[i].ID != id {
		h.mu.Unlock()
		return HistoryEntry{}, false
	}
	e := h.entries[i]
	h.mu.Unlock()
	switch {
	case e.TranscriptSize == 0:
		e.Transcript = nil
	case e.Render != nil:
		e.Transcript, e.Truncated = h.fit(e.Render())
	default:
		e.Transcript = append([]byte(nil), e.Transcript...)
	}
	e.Render = nil
	return e, true
}

// StaticTarget names a configured target of /metrics.
type StaticTarget struct {
	Target, Module string
}

// StaticStatus is a configured target and its last result.
type StaticStatus struct {
	Target, Module string
	// Probed is false until a /metrics scrape has probed the target.
	Probed bool
	// Last is its last probe, without transcript. Last.ID names its entry
	// in the history, which may have been given up since (then /logs
	// answers 404); 0 when the history is disabled.
	Last HistoryEntry
}

// StaticStatus returns the last result of each of targets, in their order.
// Results of targets not listed (no longer configured) are forgotten.
func (h *History) StaticStatus(targets []StaticTarget) []StaticStatus {
	out := make([]StaticStatus, len(targets))
	if h == nil {
		for i, t := range targets {
			out[i] = StaticStatus{Target: t.Target, Module: t.Module}
		}
		return out
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	listed := make(map[staticKey]bool, len(targets))
	for i, t := range targets {
		k := staticKey{t.Target, t.Module}
		listed[k] = true
		last, ok := h.static[k]
		out[i] = StaticStatus{Target: t.Target, Module: t.Module, Probed: ok, Last: last}
	}
	for k := range h.static {
		if !listed[k] {
			delete(h.static, k)
		}
	}
	return out
}
