package server

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// entryIDs lists the IDs of entries in order.
func entryIDs(es []HistoryEntry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// addOutcomes adds one probe per letter of outcomes: S a success, F a
// failure. The probe numbered i (from 1) gets ID i.
func addOutcomes(t *testing.T, h *History, outcomes string) {
	t.Helper()
	for _, c := range outcomes {
		e := HistoryEntry{Target: "mx.test:25", Module: "default", Success: c == 'S'}
		if c == 'F' {
			e.Phase, e.Reason = "rcpt", "reply_5xx"
		}
		h.Add(e)
	}
}

func TestHistoryEviction(t *testing.T) {
	tests := []struct {
		name     string
		limit    int
		outcomes string
		want     []uint64 // kept IDs, newest first
	}{
		{"under the limit", 4, "SFS", []uint64{3, 2, 1}},
		{"successes only: oldest goes first", 3, "SSSSS", []uint64{5, 4, 3}},
		{"failures only: oldest goes first", 3, "FFFFF", []uint64{5, 4, 3}},
		// limit 4 keeps the newest 2 whatever they are; older successes
		// give way before older failures.
		{"an old failure outlives newer successes", 4, "FSSSS", []uint64{5, 4, 3, 1}},
		{"failures accumulate", 4, "FSSSSFFF", []uint64{8, 7, 6, 1}},
		{"newest half kept even when all older are failures", 4, "FFFFSS", []uint64{6, 5, 4, 3}},
		{"limit 1 keeps the newest", 1, "FSF", []uint64{3}},
		{"limit 2 keeps the newest and an older failure", 2, "FSS", []uint64{3, 1}},
		{"disabled", 0, "FSF", []uint64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory(tc.limit, 1<<20)
			addOutcomes(t, h, tc.outcomes)
			if got := entryIDs(h.List()); !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			for id := uint64(1); id <= uint64(len(tc.outcomes)); id++ {
				_, ok := h.Get(id)
				if want := slices.Contains(tc.want, id); ok != want {
					t.Errorf("Get(%d) found %t, want %t", id, ok, want)
				}
			}
		})
	}
}

func TestHistoryDisabled(t *testing.T) {
	h := NewHistory(0, 1<<20)
	if h.Enabled() {
		t.Error("limit 0: Enabled")
	}
	if id := h.Add(HistoryEntry{Target: "a", Transcript: []byte("x")}); id != 0 {
		t.Errorf("limit 0: Add returned ID %d, want 0", id)
	}
	if l := h.List(); len(l) != 0 {
		t.Errorf("limit 0: List has %d entries", len(l))
	}
	var nilH *History
	if nilH.Enabled() || nilH.Add(HistoryEntry{}) != 0 || len(nilH.List()) != 0 || nilH.Len() != 0 || nilH.TranscriptBytes() != 0 {
		t.Error("a nil History is not an empty, disabled one")
	}
	if _, ok := nilH.Get(1); ok {
		t.Error("a nil History found an entry")
	}
}

func TestHistoryEntryFields(t *testing.T) {
	h := NewHistory(10, 1<<20)
	start := time.Date(2026, 11, 29, 3, 12, 0, 0, time.UTC)
	tr := []byte("S: 220 hi\nC: QUIT\n")
	id := h.Add(HistoryEntry{ID: 99, Time: start, Target: "mx.test:25", Module: "m", Success: false,
		Phase: "banner", Reason: "reply_4xx", Duration: 1500 * time.Millisecond, Transcript: tr})
	if id != 1 {
		t.Fatalf("first ID %d, want 1 (the caller's ID is ignored)", id)
	}
	tr[0] = 'X' // the caller reuses its buffer
	got, ok := h.Get(id)
	if !ok {
		t.Fatal("entry not found")
	}
	want := HistoryEntry{ID: 1, Time: start, Target: "mx.test:25", Module: "m", Phase: "banner", Reason: "reply_4xx",
		Duration: 1500 * time.Millisecond, TranscriptSize: len(tr)}
	if string(got.Transcript) != "S: 220 hi\nC: QUIT\n" {
		t.Errorf("transcript %q: not a copy taken at Add", got.Transcript)
	}
	got.Transcript = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Get = %+v\nwant  %+v", got, want)
	}
	got2, _ := h.Get(id)
	got2.Transcript[0] = 'Y'
	if again, _ := h.Get(id); again.Transcript[0] != 'S' {
		t.Error("Get hands out the stored transcript, not a copy")
	}
	if l := h.List(); len(l) != 1 || l[0].Transcript != nil || l[0].TranscriptSize != len(tr) {
		t.Errorf("List = %+v, want the entry without its transcript", l)
	}

	// Success clears a phase and reason given by mistake; Time defaults.
	id = h.Add(HistoryEntry{Target: "b", Success: true, Phase: "quit", Reason: "x"})
	e, _ := h.Get(id)
	if e.Phase != "" || e.Reason != "" || e.Time.IsZero() {
		t.Errorf("success entry %+v: want no phase, no reason, a time", e)
	}
	if _, ok := h.Get(12345); ok {
		t.Error("Get of an unknown ID found something")
	}
}

func TestHistoryByteBudget(t *testing.T) {
	const budget = 400 // a quarter, 100 bytes, per transcript
	tests := []struct {
		name     string
		outcomes string
		size     int
		// withTranscript lists the IDs whose transcript is kept.
		withTranscript []uint64
	}{
		{"within the budget", "SSSS", 100, []uint64{1, 2, 3, 4}},
		{"successes dropped oldest first", "SSSSSS", 100, []uint64{3, 4, 5, 6}},
		{"successes dropped before failures", "FSFSSS", 100, []uint64{1, 3, 5, 6}},
		{"then the oldest failure", "FFFFFF", 100, []uint64{3, 4, 5, 6}},
		{"small transcripts all kept", "SSSSSSSSSS", 40, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory(100, budget)
			for i, c := range tc.outcomes {
				tr := bytes.Repeat([]byte{byte('a' + i)}, tc.size)
				h.Add(HistoryEntry{Target: "t", Success: c == 'S', Transcript: tr})
			}
			total := 0
			var kept []uint64
			for _, e := range h.List() {
				total += e.TranscriptSize
				if e.TranscriptSize > 0 {
					kept = append(kept, e.ID)
				}
				got, ok := h.Get(e.ID)
				if !ok {
					t.Fatalf("entry %d listed but not found", e.ID)
				}
				if len(got.Transcript) != e.TranscriptSize {
					t.Errorf("entry %d: %d transcript bytes, TranscriptSize %d", e.ID, len(got.Transcript), e.TranscriptSize)
				}
			}
			slices.Sort(kept)
			if !slices.Equal(kept, tc.withTranscript) {
				t.Errorf("transcripts kept for %v, want %v", kept, tc.withTranscript)
			}
			if total > budget {
				t.Errorf("%d transcript bytes kept, budget %d", total, budget)
			}
			if got := h.TranscriptBytes(); got != total {
				t.Errorf("TranscriptBytes %d, the entries hold %d", got, total)
			}
			if got := h.Len(); got != len(tc.outcomes) {
				t.Errorf("Len %d, want %d", got, len(tc.outcomes))
			}
			if n := len(h.List()); n != len(tc.outcomes) {
				t.Errorf("%d entries listed, want all %d (only transcripts are dropped)", n, len(tc.outcomes))
			}
		})
	}
}

func TestHistoryTruncatesLongTranscript(t *testing.T) {
	h := NewHistory(10, 4000) // 1000 bytes per transcript
	long := "S: 220 greeting\n" + strings.Repeat("S: 250-padding line\n", 500) + "probe_success 0\n"
	id := h.Add(HistoryEntry{Target: "t", Transcript: []byte(long)})
	e, _ := h.Get(id)
	if !e.Truncated || len(e.Transcript) > 1000 || e.TranscriptSize != len(e.Transcript) {
		t.Fatalf("truncated %t, %d bytes kept (size %d), want at most 1000", e.Truncated, len(e.Transcript), e.TranscriptSize)
	}
	s := string(e.Transcript)
	if !strings.HasPrefix(s, "S: 220 greeting\n") || !strings.HasSuffix(s, "probe_success 0\n") {
		t.Errorf("head or tail lost:\n%s", s)
	}
	if !strings.Contains(s, fmt.Sprintf("[... %d bytes of this transcript not kept ...]", len(long))) {
		t.Errorf("no truncation marker:\n%s", s)
	}

	// A budget too small for even the marker keeps no transcript.
	tiny := NewHistory(10, 40)
	id = tiny.Add(HistoryEntry{Target: "t", Transcript: []byte(long)})
	if e, ok := tiny.Get(id); !ok || e.Transcript != nil || e.TranscriptSize != 0 {
		t.Errorf("tiny budget: found %t, transcript %q", ok, e.Transcript)
	}
}

func TestHistoryStaticStatus(t *testing.T) {
	for _, limit := range []int{0, 10} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			h := NewHistory(limit, 1<<20)
			h.Add(HistoryEntry{Target: "a:25", Module: "default", Static: true, Success: true})
			h.Add(HistoryEntry{Target: "a:25", Module: "rcpt", Static: true, Phase: "rcpt", Reason: "reply_5xx", Transcript: []byte("t")})
			h.Add(HistoryEntry{Target: "b:25", Module: "default", Success: false, Phase: "connect", Reason: "connect"}) // /probe
			h.Add(HistoryEntry{Target: "old:25", Module: "default", Static: true, Success: true})

			targets := []StaticTarget{{"a:25", "rcpt"}, {"b:25", "default"}, {"a:25", "default"}}
			got := h.StaticStatus(targets)
			if len(got) != 3 {
				t.Fatalf("%d statuses, want 3", len(got))
			}
			if s := got[0]; !s.Probed || s.Target != "a:25" || s.Module != "rcpt" || s.Last.Success ||
				s.Last.Phase != "rcpt" || s.Last.Reason != "reply_5xx" || s.Last.Transcript != nil {
				t.Errorf("a:25 rcpt: %+v", s)
			}
			if got[1].Probed {
				t.Errorf("b:25 was probed by /probe only, not by /metrics: %+v", got[1])
			}
			if s := got[2]; !s.Probed || !s.Last.Success {
				t.Errorf("a:25 default: %+v", s)
			}
			wantID := map[int]uint64{0: 0, 10: 2}[limit]
			if got[0].Last.ID != wantID {
				t.Errorf("a:25 rcpt links ID %d, want %d", got[0].Last.ID, wantID)
			}
			if limit > 0 {
				if e, ok := h.Get(got[0].Last.ID); !ok || e.Target != "a:25" || e.Module != "rcpt" {
					t.Errorf("the static status's ID names %+v (%t)", e, ok)
				}
			}
			// old:25 is no longer configured: forgotten.
			if s := h.StaticStatus([]StaticTarget{{"old:25", "default"}}); s[0].Probed {
				t.Errorf("a target no longer listed kept its status: %+v", s[0])
			}
		})
	}
}

// TestHistoryConcurrent runs writers and readers at once (for -race) and
// checks the bounds afterwards.
func TestHistoryConcurrent(t *testing.T) {
	const limit, budget, writers, each = 50, 5000, 8, 200
	h := NewHistory(limit, budget)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				h.Add(HistoryEntry{Target: fmt.Sprintf("w%d:25", w), Success: i%3 != 0, Static: i%2 == 0,
					Transcript: bytes.Repeat([]byte("x"), 10+i%300)})
			}
		}()
		go func() {
			defer wg.Done()
			for range each {
				for _, e := range h.List() {
					h.Get(e.ID)
				}
				h.StaticStatus([]StaticTarget{{fmt.Sprintf("w%d:25", w), ""}})
			}
		}()
	}
	wg.Wait()
	l := h.List()
	if len(l) != limit {
		t.Errorf("%d entries kept, want %d", len(l), limit)
	}
	total := 0
	for i, e := range l {
		total += e.TranscriptSize
		if i > 0 && e.ID >= l[i-1].ID {
			t.Errorf("not newest first at %d: %d after %d", i, e.ID, l[i-1].ID)
		}
	}
	if total > budget {
		t.Errorf("%d transcript bytes, budget %d", total, budget)
	}
	if l[0].ID != writers*each {
		t.Errorf("newest ID %d, want %d", l[0].ID, writers*each)
	}
}

// TestHistoryStaticSince: a static target's state says when it last
// succeeded and since when it has been failing: the first failure after
// the last success, or after the start when it never succeeded; a probe
// older than the one recorded (a late report) changes nothing.
func TestHistoryStaticSince(t *testing.T) {
	base := time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return base.Add(time.Duration(m) * time.Minute) }
	tests := []struct {
		name                   string
		outcomes               string // S or F, the i-th at minute i
		lastSuccess, failingAt int    // minutes; -1: zero time
	}{
		{"never probed", "", -1, -1},
		{"succeeding", "SS", 1, -1},
		{"failing since the start", "FFF", -1, 0},
		{"failing since its first failure after a success", "SSFFF", 1, 2},
		{"recovered", "SFFS", 3, -1},
		{"failing again", "SFSF", 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistory(10, 1<<20)
			for i, c := range tc.outcomes {
				h.Add(HistoryEntry{Time: at(i), Target: "a:25", Module: "m", Static: true, Success: c == 'S'})
			}
			st := h.StaticStatus([]StaticTarget{{"a:25", "m"}})[0]
			want := func(m int) time.Time {
				if m < 0 {
					return time.Time{}
				}
				return at(m)
			}
			if !st.LastSuccess.Equal(want(tc.lastSuccess)) || !st.FailingSince.Equal(want(tc.failingAt)) {
				t.Errorf("last success %v, failing since %v; want %v, %v", st.LastSuccess, st.FailingSince, want(tc.lastSuccess), want(tc.failingAt))
			}
		})
	}
	t.Run("a late report of an older probe", func(t *testing.T) {
		h := NewHistory(10, 1<<20)
		h.Add(HistoryEntry{Time: at(5), Target: "a:25", Module: "m", Static: true, Phase: "banner", Reason: "timeout"})
		h.Add(HistoryEntry{Time: at(4), Target: "a:25", Module: "m", Static: true, Success: true})
		st := h.StaticStatus([]StaticTarget{{"a:25", "m"}})[0]
		if st.Last.Success || !st.LastSuccess.IsZero() || !st.FailingSince.Equal(at(5)) {
			t.Errorf("%+v: the older success overwrote the newer failure", st)
		}
	})
}

// TestHistoryBytesCountsWhatIsKept: Bytes is the sum of what each kept
// entry and each static target's state take, through additions,
// evictions, dropped transcripts and forgotten targets.
func TestHistoryBytesCountsWhatIsKept(t *testing.T) {
	h := NewHistory(6, 600)
	recount := func() int {
		n := (cap(h.entries) - len(h.entries)) * entryOverhead
		for _, e := range h.entries {
			n += len(e.Transcript) + e.memory()
		}
		for _, st := range h.static {
			n += staticOverhead + st.last.summarySize()
		}
		return n
	}
	for i := range 20 {
		h.Add(HistoryEntry{Target: fmt.Sprintf("t%d.example.org:25", i%4), Module: "default", Static: i%2 == 0, Success: i%3 == 0,
			Phase: "rcpt", Reason: "reply_5xx", Reply: HistoryReply{Code: 550, Enhanced: "5.1.1", Text: strings.Repeat("x", i)},
			Transcript: bytes.Repeat([]byte("y"), 50+10*i)})
		if got, want := h.Bytes(), recount(); got != want {
			t.Fatalf("after probe %d: Bytes %d, the history holds %d", i, got, want)
		}
	}
	h.StaticStatus([]StaticTarget{{"t0.example.org:25", "default"}}) // t2 is forgotten
	if got, want := h.Bytes(), recount(); got != want || len(h.static) != 1 {
		t.Errorf("after forgetting a static target: Bytes %d, the history holds %d (%d static)", got, want, len(h.static))
	}
	if h.Bytes() <= h.TranscriptBytes() {
		t.Errorf("Bytes %d counts no more than the transcripts (%d)", h.Bytes(), h.TranscriptBytes())
	}
}
