package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// probeMailer is the X-Mailer header of the probe's test message.
const probeMailer = "smtp_exporter"

// probeMessageID matches the Message-ID of a probe's test message,
// "<unix-seconds.24-hex-digits@helo-name>", capturing the seconds.
var probeMessageID = regexp.MustCompile(`^<([0-9]{1,19})\.[0-9a-f]{24}@[^<>\s]+>$`)

// deadlineHeader is the header of the probe's test message that says, in
// unix seconds, when the probe waiting for it gives up (smtp's
// Options.MarkDeadline): another check's cleanup leaves the message alone
// until then.
const deadlineHeader = "X-Smtp-Exporter-Deadline"

// staleMargin is how long past its deadline a probe's message is kept: the
// clocks of exporters sharing a mailbox may differ by that much.
const staleMargin = time.Minute

// headerSection fetches the headers that identify a probe's message and
// its deadline, without setting \Seen.
var headerSection = &imap.FetchItemBodySection{
	Specifier:    imap.PartSpecifierHeader,
	HeaderFields: []string{"Message-ID", "X-Mailer", deadlineHeader},
	Peek:         true,
}

// wait returns the UIDs of the messages carrying the probe's Message-ID,
// once there is at least one, searching again on every EXISTS the server
// reports during IDLE, or every poll interval without IDLE.
func (d *deliverer) wait() ([]imap.UID, *Error) {
	idle := d.client.Caps().Has(imap.CapIdle)
	d.res.Idle = idle
	how := "IDLE"
	if !idle {
		how = "polling every " + d.pollInterval().String() + " (the server offers no IDLE)"
	}
	deadline, _ := d.ctx.Deadline()
	d.log.note("waiting for %s with %s, at most %.1fs more", d.req.MessageID, how, time.Until(deadline).Seconds())
	for {
		uids, err := d.findMessage()
		if err != nil {
			return nil, err
		}
		if len(uids) > 0 {
			d.res.SeenAt = time.Now()
			d.res.Delivery = d.res.SeenAt.Sub(d.req.AcceptedAt)
			d.log.note("message found %.3fs after it was accepted", d.res.Delivery.Seconds())
			return uids, nil
		}
		if idle {
			err = d.idleUntilNewMail()
		} else {
			err = d.sleep(d.pollInterval())
		}
		if err != nil {
			return nil, err
		}
	}
}

func (d *deliverer) pollInterval() time.Duration {
	if d.dc.PollInterval > 0 {
		return d.dc.PollInterval
	}
	return DefaultPollInterval
}

// notArrived is the failure of a message that did not come in time.
func (d *deliverer) notArrived() *Error {
	cause := d.ctx.Err()
	if cause == nil { // the socket's deadline came a moment before the context's timer
		cause = context.DeadlineExceeded
	}
	return d.fail(ReasonTimeout, fmt.Errorf("the message %s was not in the mailbox %.1fs after it was accepted (%w)",
		d.req.MessageID, time.Since(d.req.AcceptedAt).Seconds(), cause))
}

// closed is the failure of a connection that ended while waiting: the
// deadline's doing (the socket is closed then), or the server's.
func (d *deliverer) closed(when string) *Error {
	if d.expired() {
		return d.notArrived()
	}
	return d.fail(ReasonClosed, errors.New("the server closed the connection "+when))
}

// idleUntilNewMail runs IDLE until the server reports a new message.
func (d *deliverer) idleUntilNewMail() *Error {
	select {
	case <-d.newMail: // reported after the last search began: search again
		return nil
	default:
	}
	cmd, err := d.client.Idle()
	if err != nil {
		if d.expired() {
			return d.notArrived()
		}
		return d.imapError(fmt.Errorf("idle: %w", err))
	}
	select {
	case <-d.newMail:
	case <-d.ctx.Done():
		// The connection is closing; IDLE ends with it.
		return d.notArrived()
	case <-d.client.Closed():
		return d.closed("during IDLE")
	}
	if err := cmd.Close(); err != nil {
		return d.ioError(fmt.Errorf("ending idle: %w", err))
	}
	if err := cmd.Wait(); err != nil {
		return d.imapError(fmt.Errorf("idle: %w", err))
	}
	return nil
}

// sleep waits for the next poll, or less if the server reported new mail.
func (d *deliverer) sleep(interval time.Duration) *Error {
	t := time.NewTimer(interval)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.newMail:
	case <-d.ctx.Done():
		return d.notArrived()
	case <-d.client.Closed():
		return d.closed("between searches")
	}
	return nil
}

// findMessage searches the mailbox for the probe's Message-ID and returns
// the UIDs of the messages whose header equals it exactly (SEARCH HEADER
// matches substrings).
func (d *deliverer) findMessage() ([]imap.UID, *Error) {
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: d.req.MessageID}}}
	found, err := d.client.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return nil, d.searchError(err)
	}
	heads, ferr := d.headers(found.AllUIDs(), 10)
	if ferr != nil {
		return nil, ferr
	}
	var uids []imap.UID
	for uid, h := range heads {
		if strings.TrimSpace(h.Get("Message-Id")) == d.req.MessageID {
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

func (d *deliverer) searchError(err error) *Error {
	if d.expired() {
		return d.notArrived()
	}
	return d.imapError(fmt.Errorf("search: %w", err))
}

// headers fetches the Message-ID and X-Mailer headers of at most limit of
// the messages uids names.
func (d *deliverer) headers(uids []imap.UID, limit int) (map[imap.UID]mail.Header, *Error) {
	if len(uids) == 0 {
		return nil, nil
	}
	if len(uids) > limit {
		uids = uids[:limit]
	}
	msgs, err := d.client.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{headerSection},
	}).Collect()
	if err != nil {
		if d.expired() {
			return nil, d.notArrived()
		}
		return nil, d.imapError(fmt.Errorf("fetching headers: %w", err))
	}
	heads := make(map[imap.UID]mail.Header, len(msgs))
	for _, m := range msgs {
		raw := m.FindBodySection(headerSection)
		if m.UID == 0 || raw == nil {
			continue
		}
		// The section ends with its blank line; be lenient if it does not.
		if !bytes.HasSuffix(raw, []byte("\r\n\r\n")) && !bytes.HasSuffix(raw, []byte("\n\n")) {
			raw = append(raw, "\r\n\r\n"...)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		heads[m.UID] = msg.Header
	}
	return heads, nil
}

// staleMessages returns the UIDs of messages of earlier probes: sent by
// smtp_exporter (X-Mailer), with a Message-ID of the probe's form, other
// than ours, that no probe waits for any more: their deadline header has
// passed (by staleMargin); without one (an exporter from before it), sent
// before this check's acceptance minus the longest wait it allows.
func (d *deliverer) staleMessages() ([]imap.UID, *Error) {
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Mailer", Value: probeMailer}}}
	found, err := d.client.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return nil, d.searchError(err)
	}
	heads, ferr := d.headers(found.AllUIDs(), staleScanLimit)
	if ferr != nil {
		return nil, ferr
	}
	deadline, _ := d.ctx.Deadline()
	wait := max(d.dc.Timeout, deadline.Sub(d.req.AcceptedAt))
	cutoff := d.req.AcceptedAt.Add(-wait - time.Second)
	now := time.Now()
	var stale []imap.UID
	for uid, h := range heads {
		if isStaleProbeMessage(h, d.req.MessageID, cutoff, now) {
			stale = append(stale, uid)
		}
	}
	return stale, nil
}

// isStaleProbeMessage reports whether h is the header of a probe's message,
// other than ours, that no probe waits for at now: its deadline header
// passed by staleMargin, or, without a readable one, sent before cutoff.
func isStaleProbeMessage(h mail.Header, ours string, cutoff, now time.Time) bool {
	if strings.TrimSpace(h.Get("X-Mailer")) != probeMailer {
		return false
	}
	id := strings.TrimSpace(h.Get("Message-Id"))
	m := probeMessageID.FindStringSubmatch(id)
	if m == nil || id == ours {
		return false
	}
	if v := strings.TrimSpace(h.Get(deadlineHeader)); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(secs, 0).Add(staleMargin).Before(now)
		}
	}
	secs, err := strconv.ParseInt(m[1], 10, 64)
	return err == nil && time.Unix(secs, 0).Before(cutoff)
}

// remove marks the messages \Deleted and expunges them: with UID EXPUNGE
// where the server offers UIDPLUS, else with EXPUNGE (which also removes
// any other message marked \Deleted in the mailbox).
func (d *deliverer) remove(uids []imap.UID) *Error {
	set := imap.UIDSetNum(uids...)
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := d.client.Store(set, store, nil).Close(); err != nil {
		return d.imapError(fmt.Errorf("marking %v deleted: %w", set, err))
	}
	var err error
	if d.client.Caps().Has(imap.CapUIDPlus) {
		err = d.client.UIDExpunge(set).Close()
	} else {
		err = d.client.Expunge().Close()
	}
	if err != nil {
		return d.imapError(fmt.Errorf("expunging %v: %w", set, err))
	}
	return nil
}
