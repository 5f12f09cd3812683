package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// checkFor is a delivery check of the fake server's account, trusting its CA.
func (f *fakeIMAP) checkFor(mode TLSMode) *Check {
	return &Check{
		Addr: f.addr, TLS: mode,
		TLSConfig: &tls.Config{RootCAs: f.pki.Pool, ServerName: "imap.probe.test"},
		Username:  imapUser,
		Password:  func() (string, error) { return imapPassword, nil },
		Timeout:   20 * time.Second,
	}
}

type checkOutcome struct {
	res *Result
	err *Error
}

// goCheck runs Wait in the background.
func goCheck(ctx context.Context, dc *Check, req Request) <-chan checkOutcome {
	ch := make(chan checkOutcome, 1)
	go func() {
		res, err := Wait(ctx, dc, req)
		ch <- checkOutcome{res, err}
	}()
	return ch
}

// await waits for a signal, failing the test after a generous bound that
// still catches a hang.
func await(t *testing.T, ch <-chan struct{}, what string, rec *recorder) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s within 15s; transcript:\n%s", what, rec.text())
	}
}

func TestDeliveryArrivesDuringIdle(t *testing.T) {
	for _, mode := range []TLSMode{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(string(mode), func(t *testing.T) {
			f := startIMAP(t, mode)
			rec := &recorder{}
			accepted := time.Now()
			id := probeID(accepted)
			idling := rec.when(`S: \+ `, 1) // the server's continuation to IDLE
			out := goCheck(context.Background(), f.checkFor(mode),
				Request{MessageID: id, AcceptedAt: accepted, Transcript: rec.add})
			await(t, idling, "IDLE", rec)
			f.deliver(t, id, true)
			delivered := time.Now()
			o := <-out
			tr := rec.text()
			if o.err != nil {
				t.Fatalf("Wait: %v\n%s", o.err, tr)
			}
			if !o.res.Idle || !o.res.Deleted {
				t.Errorf("Idle %t Deleted %t, want both true", o.res.Idle, o.res.Deleted)
			}
			if least := delivered.Sub(accepted); o.res.Delivery < least || o.res.SeenAt.Before(delivered) {
				t.Errorf("Delivery %v, SeenAt %v: want at least %v, not before the append at %v", o.res.Delivery, o.res.SeenAt, least, delivered)
			}
			if f.has(t, id) || f.messages(t) != 0 {
				t.Errorf("the message is still in the mailbox (%d messages)", f.messages(t))
			}
			for _, want := range []string{"LOGIN <redacted>", " IDLE\n", "C: DONE", "EXISTS", "UID EXPUNGE", "message found", "message deleted"} {
				if !strings.Contains(tr, want) {
					t.Errorf("transcript lacks %q:\n%s", want, tr)
				}
			}
			if mode != TLSNone && !strings.Contains(tr, "TLS handshake done") {
				t.Errorf("transcript lacks the TLS handshake:\n%s", tr)
			}
			if mode == TLSStartTLS && !strings.Contains(tr, "C: S1 STARTTLS") {
				t.Errorf("transcript lacks STARTTLS:\n%s", tr)
			}
			if strings.Contains(tr, imapPassword) {
				t.Errorf("the password is in the transcript:\n%s", tr)
			}
		})
	}
}

func TestDeliveryAlreadyThere(t *testing.T) {
	f := startIMAP(t, TLSNone)
	accepted := time.Now()
	id := probeID(accepted)
	f.deliver(t, id, true)
	rec := &recorder{}
	res, err := Wait(context.Background(), f.checkFor(TLSNone),
		Request{MessageID: id, AcceptedAt: accepted, Transcript: rec.add})
	if err != nil {
		t.Fatalf("Wait: %v\n%s", err, rec.text())
	}
	if !res.Deleted || res.Delivery <= 0 || f.messages(t) != 0 {
		t.Errorf("Deleted %t, Delivery %v, %d messages left", res.Deleted, res.Delivery, f.messages(t))
	}
	if strings.Contains(rec.text(), " IDLE\n") {
		t.Errorf("IDLE although the message was there:\n%s", rec.text())
	}
}

func TestDeliveryNeverArrives(t *testing.T) {
	const margin = 3 * time.Second
	tests := []struct {
		name     string
		timeout  time.Duration // dc.Timeout
		ctx      time.Duration // the context's deadline
		accepted time.Duration // how long before the check the message was accepted
		want     time.Duration // when the check must end, from its start
	}{
		{name: "delivery timeout", timeout: 800 * time.Millisecond, ctx: 30 * time.Second, want: 800 * time.Millisecond},
		{name: "probe deadline first", timeout: time.Minute, ctx: 800 * time.Millisecond, want: 800 * time.Millisecond},
		{name: "timeout counts from acceptance", timeout: 1200 * time.Millisecond, ctx: 30 * time.Second,
			accepted: 500 * time.Millisecond, want: 700 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startIMAP(t, TLSNone)
			f.deliver(t, probeID(time.Now()), true) // a concurrent probe's message: not ours
			dc := f.checkFor(TLSNone)
			dc.Timeout = tt.timeout
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctx)
			defer cancel()
			start := time.Now()
			rec := &recorder{}
			res, err := Wait(ctx, dc, Request{MessageID: probeID(start),
				AcceptedAt: start.Add(-tt.accepted), Transcript: rec.add})
			took := time.Since(start)
			if err == nil || err.Reason != ReasonTimeout {
				t.Fatalf("err = %v, want delivery: timeout\n%s", err, rec.text())
			}
			if took < tt.want-50*time.Millisecond || took > tt.want+margin {
				t.Errorf("took %v, want %v (+ at most %v)", took, tt.want, margin)
			}
			if res.Deleted || !res.SeenAt.IsZero() || f.messages(t) != 1 {
				t.Errorf("Deleted %t SeenAt %v, %d messages (want the other probe's one kept)", res.Deleted, res.SeenAt, f.messages(t))
			}
			if !strings.Contains(err.Error(), "was not in the mailbox") || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "%!") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestDeliveryWrongPassword(t *testing.T) {
	const wrong = "Wr0ng-Pa55word-42"
	f := startIMAP(t, TLSNone)
	dc := f.checkFor(TLSNone)
	dc.Password = func() (string, error) { return wrong, nil }
	rec := &recorder{}
	_, err := Wait(context.Background(), dc, Request{MessageID: probeID(time.Now()), Transcript: rec.add})
	if err == nil || err.Reason != ReasonAuth {
		t.Fatalf("err = %v, want delivery: auth\n%s", err, rec.text())
	}
	if out := rec.text() + err.Error(); strings.Contains(out, wrong) {
		t.Errorf("the password shows:\n%s", out)
	}
}

// A server that echoes the password in its refusal: the echo is scrubbed
// from the transcript and the error.
func TestDeliveryPasswordEchoScrubbed(t *testing.T) {
	addr, done := scriptedIMAP(t, func(c net.Conn, r *bufio.Reader) error {
		fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			f := strings.Fields(line)
			if len(f) < 2 {
				return fmt.Errorf("bad command %q", line)
			}
			switch strings.ToUpper(f[1]) {
			case "CAPABILITY":
				fmt.Fprintf(c, "* CAPABILITY IMAP4rev1 IDLE\r\n%s OK done\r\n", f[0])
			case "LOGIN":
				fmt.Fprintf(c, "%s NO [AUTHENTICATIONFAILED] bad credentials: %s\r\n", f[0], strings.Join(f[2:], " "))
				return nil
			default:
				return fmt.Errorf("unexpected %q", line)
			}
		}
	})
	dc := &Check{Addr: addr, Username: "u", Password: func() (string, error) { return `pa"ss word`, nil }}
	rec := &recorder{}
	_, err := Wait(context.Background(), dc, Request{MessageID: probeID(time.Now()), Transcript: rec.add})
	if err == nil || err.Reason != ReasonAuth {
		t.Fatalf("err = %v, want auth", err)
	}
	if serr := <-done; serr != nil {
		t.Fatalf("server: %v", serr)
	}
	out := rec.text() + err.Error()
	for _, secret := range []string{`pa"ss word`, `pa\"ss word`} {
		if strings.Contains(out, secret) {
			t.Errorf("%q shows:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "bad credentials: \"u\" \"<redacted>\"") {
		t.Errorf("the server's echo is not scrubbed in place:\n%s", out)
	}
}

func TestDeliveryStaleMessages(t *testing.T) {
	f := startIMAP(t, TLSNone)
	now := time.Now()
	stale := probeID(now.Add(-time.Hour))   // an earlier probe's, arrived late
	concurrent := probeID(now)              // a probe still waiting
	foreign := probeID(now.Add(-time.Hour)) // same form, but not sent by the exporter
	f.deliver(t, stale, true)
	f.deliver(t, concurrent, true)
	f.deliver(t, foreign, false)
	dc := f.checkFor(TLSNone)
	dc.Timeout = 500 * time.Millisecond

	// The stale message is not taken for this probe's. The cleanup comes
	// after this probe's own message, so a wait that runs out leaves it
	// to the next check.
	res, err := Wait(context.Background(), dc, Request{MessageID: probeID(now), AcceptedAt: now})
	if err == nil || err.Reason != ReasonTimeout {
		t.Fatalf("err = %v, want timeout", err)
	}
	if res.StaleDeleted != 0 || f.messages(t) != 3 {
		t.Errorf("StaleDeleted %d, %d messages (want 0, 3)", res.StaleDeleted, f.messages(t))
	}

	// With this probe's message there: it is deleted, then the stale one
	// (the concurrent probe's wait, as long as this one's, has not ended).
	dc.Timeout = 10 * time.Second
	id := probeID(time.Now())
	f.deliver(t, id, true)
	res, err = Wait(context.Background(), dc, Request{MessageID: id})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Deleted || res.StaleDeleted != 1 || f.has(t, id) || f.has(t, stale) || !f.has(t, concurrent) || !f.has(t, foreign) {
		t.Errorf("Deleted %t StaleDeleted %d; ours there %t, stale there %t, concurrent there %t, foreign there %t (want true 1 false false true true)",
			res.Deleted, res.StaleDeleted, f.has(t, id), f.has(t, stale), f.has(t, concurrent), f.has(t, foreign))
	}
}

func TestDeliveryPollingWithoutIdle(t *testing.T) {
	f := startIMAP(t, TLSNone)
	proxy := startNoIdleProxy(t, f.addr)
	dc := f.checkFor(TLSNone)
	dc.Addr = proxy.addr
	dc.PollInterval = 50 * time.Millisecond
	rec := &recorder{}
	accepted := time.Now()
	id := probeID(accepted)
	// A second search for the message proves the check polls; the message
	// then arrives.
	polled := rec.when(`UID SEARCH HEADER "Message-ID"`, 2)
	out := goCheck(context.Background(), dc, Request{MessageID: id, AcceptedAt: accepted, Transcript: rec.add})
	await(t, polled, "second search", rec)
	f.deliver(t, id, true)
	o := <-out
	if o.err != nil {
		t.Fatalf("Wait: %v\n%s", o.err, rec.text())
	}
	if o.res.Idle || !o.res.Deleted || f.messages(t) != 0 {
		t.Errorf("Idle %t Deleted %t, %d messages", o.res.Idle, o.res.Deleted, f.messages(t))
	}
	select {
	case line := <-proxy.idleSent:
		t.Errorf("IDLE sent to a server without it: %q", line)
	default:
	}
	if !strings.Contains(rec.text(), "polling every 50ms") {
		t.Errorf("transcript does not say it polls:\n%s", rec.text())
	}
}
