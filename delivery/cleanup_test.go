package delivery

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// deliverProbe appends a probe's message (X-Mailer: smtp_exporter) whose
// X-Smtp-Exporter-Deadline says when its probe stops waiting for it.
func (f *fakeIMAP) deliverProbe(t *testing.T, messageID string, deadline time.Time) {
	t.Helper()
	msg := "From: <probe@probe.test>\r\nTo: <" + imapUser + ">\r\nSubject: test\r\nMessage-ID: " + messageID +
		"\r\nX-Mailer: smtp_exporter\r\nX-Smtp-Exporter-Deadline: " + strconv.FormatInt(deadline.Unix(), 10) + "\r\n\r\nbody\r\n"
	if _, err := f.user.Append("INBOX", bytes.NewReader([]byte(msg)), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// expunge is one EXPUNGE the slow server began: when, and how many
// messages it named.
type expunge struct {
	at time.Time
	n  int
}

// slowExpunge takes per for every message an EXPUNGE removes, and reports
// each EXPUNGE as it begins.
type slowExpunge struct {
	imapserver.Session
	per   time.Duration
	begun chan<- expunge
}

func (s slowExpunge) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	n := 1
	if uids != nil {
		n = 0
		for _, r := range *uids {
			n += int(r.Stop-r.Start) + 1
		}
	}
	select {
	case s.begun <- expunge{at: time.Now(), n: n}:
	default:
	}
	time.Sleep(time.Duration(n) * s.per)
	return s.Session.Expunge(w, uids)
}

// TestDeliveryCleanupAfterTheWait: the messages of earlier probes are
// cleaned up after this probe's own message was found, best effort, so a
// slow EXPUNGE (30 stale messages at 80ms each, on a server without IDLE)
// neither makes a message that arrived at once miss its wait nor counts in
// its delivery time.
func TestDeliveryCleanupAfterTheWait(t *testing.T) {
	const stale, per = 30, 80 * time.Millisecond
	for _, tc := range []struct {
		name      string
		timeout   time.Duration
		wantClean bool // the cleanup has the time to finish
	}{
		{name: "the cleanup takes longer than the wait", timeout: 2 * time.Second},
		{name: "the cleanup fits in the wait", timeout: 6 * time.Second, wantClean: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			begun := make(chan expunge, 8)
			f := startIMAPWith(t, TLSNone, func(s imapserver.Session) imapserver.Session {
				return slowExpunge{Session: s, per: per, begun: begun}
			})
			proxy := startNoIdleProxy(t, f.addr)
			for range stale {
				f.deliver(t, probeID(time.Now().Add(-time.Hour)), true)
			}
			accepted := time.Now()
			id := probeID(accepted)
			f.deliver(t, id, true) // arrived at once
			dc := f.checkFor(TLSNone)
			dc.Addr, dc.Timeout, dc.PollInterval = proxy.addr, tc.timeout, 50*time.Millisecond
			rec := &recorder{}
			res, err := Wait(context.Background(), dc, Request{MessageID: id, AcceptedAt: accepted, Transcript: rec.add})
			if err != nil {
				t.Fatalf("Wait: %v\n%s", err, rec.text())
			}
			if res.Idle || !res.Deleted || f.has(t, id) {
				t.Errorf("Idle %t Deleted %t, ours still there %t", res.Idle, res.Deleted, f.has(t, id))
			}
			// The stale EXPUNGE began after the message was seen: its time
			// is in neither the wait nor the delivery time.
			var cleanup *expunge
			for len(begun) > 0 {
				if e := <-begun; e.n == stale {
					cleanup = &e
				}
			}
			if cleanup == nil || !cleanup.at.After(res.SeenAt) {
				t.Fatalf("the stale messages' EXPUNGE (%+v) did not begin after the message was seen at %v\n%s", cleanup, res.SeenAt, rec.text())
			}
			if res.Delivery > cleanup.at.Sub(accepted) {
				t.Errorf("Delivery %v includes the cleanup", res.Delivery)
			}
			if tc.wantClean && (res.StaleDeleted != stale || f.messages(t) != 0) {
				t.Errorf("StaleDeleted %d, %d messages left; want %d deleted, none left", res.StaleDeleted, f.messages(t), stale)
			}
			if !tc.wantClean && !strings.Contains(rec.text(), "earlier probes") {
				t.Errorf("the transcript does not say the cleanup was cut short:\n%s", rec.text())
			}
		})
	}
}

// TestDeliveryConcurrentWaitsOfDifferentLengths: two probes with waits of
// different lengths share a mailbox. The short one's cleanup must not
// delete the message the long one is still waiting for: a message's own
// deadline (X-Smtp-Exporter-Deadline), not the cleaner's wait, says when
// it is stale.
func TestDeliveryConcurrentWaitsOfDifferentLengths(t *testing.T) {
	f := startIMAP(t, TLSNone)
	proxy := startNoIdleProxy(t, f.addr) // the long probe polls: its next look is 2s away

	// The long probe: its message accepted 3s ago, a wait of 10s.
	longAccepted := time.Now().Add(-3 * time.Second)
	longID := probeID(longAccepted)
	longDC := f.checkFor(TLSNone)
	longDC.Addr, longDC.Timeout, longDC.PollInterval = proxy.addr, 10*time.Second, 2*time.Second
	longRec := &recorder{}
	searched := longRec.when(`C: T[0-9]+ UID SEARCH HEADER "Message-ID"`, 1)
	long := goCheck(context.Background(), longDC, Request{MessageID: longID, AcceptedAt: longAccepted, Transcript: longRec.add})
	await(t, searched, "the long probe's first search", longRec)
	tag := regexp.MustCompile(`C: (T[0-9]+) UID SEARCH HEADER "Message-ID"`).FindStringSubmatch(longRec.text())[1]
	await(t, longRec.when(`S: `+tag+` OK`, 1), "the answer to the long probe's first search", longRec)

	// Its message arrives now, late but within its wait; with it, two
	// truly stale ones: one whose deadline passed an hour ago, and one
	// from an exporter that wrote no deadline, sent an hour ago.
	f.deliverProbe(t, longID, longAccepted.Add(longDC.Timeout))
	pastDeadline := probeID(time.Now().Add(-2 * time.Hour))
	f.deliverProbe(t, pastDeadline, time.Now().Add(-time.Hour))
	legacy := probeID(time.Now().Add(-time.Hour))
	f.deliver(t, legacy, true)

	// The short probe: a wait of 1s, its message there at once.
	shortAccepted := time.Now()
	shortID := probeID(shortAccepted)
	f.deliverProbe(t, shortID, shortAccepted.Add(time.Second))
	shortDC := f.checkFor(TLSNone)
	shortDC.Timeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rec := &recorder{}
	res, err := Wait(ctx, shortDC, Request{MessageID: shortID, AcceptedAt: shortAccepted, Transcript: rec.add})
	if err != nil {
		t.Fatalf("short probe: %v\n%s", err, rec.text())
	}
	if res.StaleDeleted != 2 || f.has(t, pastDeadline) || f.has(t, legacy) {
		t.Errorf("short probe deleted %d stale messages (past deadline there %t, legacy there %t); want 2, both gone\n%s",
			res.StaleDeleted, f.has(t, pastDeadline), f.has(t, legacy), rec.text())
	}

	o := <-long
	if o.err != nil {
		t.Fatalf("long probe: %v (the short probe's cleanup took its message)\n%s", o.err, longRec.text())
	}
	if !o.res.Deleted || f.messages(t) != 0 {
		t.Errorf("long probe: Deleted %t, %d messages left", o.res.Deleted, f.messages(t))
	}
}
