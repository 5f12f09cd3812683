package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// HistoryEntry is one probe as the landing page lists it: a summary and
// its debug text, never the probe's own data (its results, the server's
// parsed certificate chain), so that what an entry keeps is what the
// history counts (History.Bytes). Its fields are values and strings only.
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
	// Reply is the reply that decided the probe (probe_smtp_last_reply_code):
	// the failing one, or the reply to QUIT; zero when none came.
	Reply HistoryReply
	// Duration is the whole probe.
	Duration time.Duration
	// Transcript is the debug text: the SMTP transcript, then the metrics.
	// Add copies it; List leaves it nil; Get returns a copy.
	Transcript []byte
	// TranscriptSize is the number of transcript bytes kept, 0 when none is
	// (none was given, or it was dropped to stay within the memory budget).
	// Set by History.
	TranscriptSize int
	// Truncated is true when the kept transcript was cut to fit the budget.
	// Set by History.
	Truncated bool
}

// HistoryReply is a reply as the landing page shows it.
type HistoryReply struct {
	// Code is the reply code; 0 when no reply came.
	Code int
	// Enhanced is the RFC 3463 code ("5.7.1"), empty when there is none.
	Enhanced string
	// Text is the server's words without the enhanced code, lines joined
	// by " / ", made safe (smtp.SafeText) and cut to MaxReplyText bytes.
	Text string
}

// MaxReplyText bounds HistoryReply.Text, in bytes.
const MaxReplyText = 200

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
// It also remembers the last result of every static target, when it last
// succeeded and since when it has been failing (see StaticStatus),
// whatever the limit.
type History struct {
	limit    int
	maxBytes int

	mu          sync.Mutex
	nextID      uint64
	entries     []HistoryEntry // oldest first
	bytes       int            // transcript bytes kept
	entryBytes  int            // what the entries take besides their transcripts
	static      map[staticKey]staticState
	staticBytes int // what static takes
}

type staticKey struct{ target, module string }

// staticState is what the history remembers of a static target.
type staticState struct {
	last         HistoryEntry // without transcript
	lastSuccess  time.Time
	failingSince time.Time
}

// entryOverhead is what an entry takes besides its strings and transcript.
const entryOverhead = int(unsafe.Sizeof(HistoryEntry{}))

// staticOverhead is what a static target's state takes in the map besides
// its strings: the state, the key and the map's own bookkeeping (about a
// tophash byte and a share of the bucket's overflow pointer and padding).
const staticOverhead = int(unsafe.Sizeof(staticState{})+unsafe.Sizeof(staticKey{})) + 16

// summarySize is the memory e's strings take.
func (e *HistoryEntry) summarySize() int {
	return len(e.Target) + len(e.Module) + len(e.Phase) + len(e.Reason) + len(e.Reply.Enhanced) + len(e.Reply.Text)
}

// memory is what a kept entry takes besides its transcript's bytes: its
// fields, its strings, and the room the allocator gave its transcript
// beyond them.
func (e *HistoryEntry) memory() int {
	return entryOverhead + e.summarySize() + cap(e.Transcript) - len(e.Transcript)
}

// NewHistory returns a History that keeps at most limit probes and at most
// maxTranscriptBytes bytes of transcripts. A limit of 0 (or less) keeps no
// probes; a budget of 0 (or less) keeps no transcripts.
func NewHistory(limit, maxTranscriptBytes int) *History {
	return &History{
		limit:    max(limit, 0),
		maxBytes: max(maxTranscriptBytes, 0),
		nextID:   1,
		static:   map[staticKey]staticState{},
	}
}

// Enabled reports whether the history keeps probes at all, so a handler can
// skip building a transcript nobody will read.
func (h *History) Enabled() bool { return h != nil && h.limit > 0 }

// Add records a probe and returns its ID (0 when the history is disabled).
// The transcript and the strings are copied: the entry shares no memory
// with the caller's.
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
	e.Target, e.Module, e.Phase, e.Reason = strings.Clone(e.Target), strings.Clone(e.Module), strings.Clone(e.Phase), strings.Clone(e.Reason)
	e.Reply.Enhanced, e.Reply.Text = strings.Clone(e.Reply.Enhanced), strings.Clone(e.Reply.Text)
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.Static {
		id := uint64(0)
		if h.limit > 0 {
			id = h.nextID
		}
		h.addStatic(e, id)
	}
	if h.limit == 0 {
		return 0
	}
	e.ID = h.nextID
	h.nextID++
	e.Transcript, e.Truncated = h.fit(e.Transcript)
	e.TranscriptSize = len(e.Transcript)
	h.entries = append(h.entries, e)
	h.bytes += e.TranscriptSize
	h.entryBytes += e.memory()
	for len(h.entries) > h.limit {
		i := h.victim()
		h.bytes -= h.entries[i].TranscriptSize
		h.entryBytes -= h.entries[i].memory()
		h.entries = slices.Delete(h.entries, i, i+1)
	}
	for h.bytes > h.maxBytes {
		i := h.transcriptVictim()
		if i < 0 {
			break
		}
		h.bytes -= h.entries[i].TranscriptSize
		h.entryBytes -= h.entries[i].memory()
		h.entries[i].Transcript, h.entries[i].TranscriptSize, h.entries[i].Truncated = nil, 0, false
		h.entryBytes += h.entries[i].memory()
	}
	return e.ID
}

// addStatic updates the state of a static target with its probe e, whose
// entry will have ID id. A probe older than the one already recorded
// changes nothing.
func (h *History) addStatic(e HistoryEntry, id uint64) {
	k := staticKey{e.Target, e.Module}
	st, had := h.static[k]
	if had && e.Time.Before(st.last.Time) {
		return
	}
	if had {
		h.staticBytes -= staticOverhead + st.last.summarySize()
	}
	st.last = e
	st.last.ID, st.last.Transcript, st.last.TranscriptSize, st.last.Truncated = id, nil, 0, false
	if e.Success {
		st.lastSuccess, st.failingSince = e.Time, time.Time{}
	} else if st.failingSince.IsZero() {
		st.failingSince = e.Time
	}
	h.static[k] = st
	h.staticBytes += staticOverhead + st.last.summarySize()
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

// Bytes is the memory the history takes: every entry (its fields, its
// strings and its transcript, with the allocator's rounding), the list's
// room to grow, and the static targets' states.
func (h *History) Bytes() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	spare := (cap(h.entries) - len(h.entries)) * entryOverhead // the list's room to grow
	return h.bytes + h.entryBytes + spare + h.staticBytes
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
		e.Transcript = nil
		out[len(out)-1-i] = e
	}
	return out
}

// Get returns the probe with this ID, with a copy of its transcript (nil
// when it was dropped), and whether the probe is still kept.
func (h *History) Get(id uint64) (HistoryEntry, bool) {
	if h == nil {
		return HistoryEntry{}, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// IDs grow with the index: binary search.
	i := sort.Search(len(h.entries), func(i int) bool { return h.entries[i].ID >= id })
	if i == len(h.entries) || h.entries[i].ID != id {
		return HistoryEntry{}, false
	}
	e := h.entries[i]
	if e.Transcript != nil {
		e.Transcript = append([]byte(nil), e.Transcript...)
	}
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
	// LastSuccess is when its last successful probe started; zero when none
	// has succeeded since the exporter started.
	LastSuccess time.Time
	// FailingSince is when the first of its failures since its last success
	// (or since the exporter started) began; zero when the last probe
	// succeeded.
	FailingSince time.Time
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
		st, ok := h.static[k]
		out[i] = StaticStatus{Target: t.Target, Module: t.Module, Probed: ok, Last: st.last,
			LastSuccess: st.lastSuccess, FailingSince: st.failingSince}
	}
	for k, st := range h.static {
		if !listed[k] {
			h.staticBytes -= staticOverhead + st.last.summarySize()
			delete(h.static, k)
		}
	}
	return out
}
