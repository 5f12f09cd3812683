package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/delivery"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestDeliveryTakesASlot: the delivery check's IMAP session is a connection
// of the probe like its SMTP dialog: it takes a slot of the caller's
// capacity (Hooks.Admit) and gives it back, and when none is free the
// check fails in phase delivery without dialling the mailbox server.
func TestDeliveryTakesASlot(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	imap, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dialled atomic.Int32
	// Each connection is counted and closed at once: the check then fails.
	smtptest.Serve(t, imap, func(net.Conn) { dialled.Add(1) })

	plan := &Plan{Name: "roundtrip", Timeout: 5 * time.Second,
		Options: &smtp.Options{HeloName: "probe.test", MailFrom: "probe@probe.test", RcptTo: []string{"inbox@probe.test"}, SendData: true},
		Delivery: &delivery.Check{Addr: imap.Addr().String(), TLS: delivery.TLSNone, Username: "inbox@probe.test",
			Password: func() (string, error) { return "secret", nil }, Timeout: 2 * time.Second}}
	target := Target{Plan: plan, Host: host, Port: mustPort(t, portStr), Key: srv.Addr}

	t.Run("a slot for the mailbox too, released", func(t *testing.T) {
		var mu sync.Mutex
		calls, held := 0, 0
		admit := func(context.Context) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			held++
			return func() { mu.Lock(); held--; mu.Unlock() }, nil
		}
		o, err := Run(t.Context(), target, Hooks{Admit: admit})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 2 || held != 0 || dialled.Load() != 1 {
			t.Errorf("admit called %d times (want 2: SMTP and IMAP), %d slots still held, mailbox dialled %d times", calls, held, dialled.Load())
		}
		if e := o.Hosts[0].Result.Err; e == nil || e.Phase != PhaseDelivery {
			t.Errorf("err = %v, want a delivery failure (the fake mailbox hangs up)", e)
		}
	})
	t.Run("no slot for the mailbox: overload, not dialled", func(t *testing.T) {
		before := dialled.Load()
		var calls atomic.Int32
		admit := func(context.Context) (func(), error) {
			if calls.Add(1) > 1 {
				return nil, errors.New("all 2 slots in use")
			}
			return func() {}, nil
		}
		o, err := Run(t.Context(), target, Hooks{Admit: admit})
		if err != nil {
			t.Fatal(err)
		}
		e := o.Hosts[0].Result.Err
		if e == nil || e.Phase != PhaseDelivery || e.Reason != smtp.ReasonOverload || o.Success {
			t.Errorf("err = %v, want delivery/overload", e)
		}
		if dialled.Load() != before {
			t.Errorf("the mailbox server was dialled without a slot")
		}
	})
}

// TestTranscriptCapCoversIMAP: the 32 KiB cap on a probe's transcript holds
// for the whole probe, the delivery check's IMAP lines included: a mailbox
// server sending 3,000 untagged lines cannot grow the debug answer.
func TestTranscriptCapCoversIMAP(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	imap, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtptest.Serve(t, imap, func(c net.Conn) {
		c.Write([]byte("* OK [CAPABILITY IMAP4rev1] ready\r\n"))
		line := make([]byte, 512)
		n, _ := c.Read(line) // the LOGIN
		tag, _, _ := strings.Cut(string(line[:n]), " ")
		var b strings.Builder
		for i := range 3000 {
			fmt.Fprintf(&b, "* OK untagged line %04d %s\r\n", i, strings.Repeat("x", 100))
		}
		b.WriteString(tag + " NO [AUTHENTICATIONFAILED] no\r\n")
		c.Write([]byte(b.String()))
		io.Copy(io.Discard, c)
	})
	plan := &Plan{Name: "roundtrip", Timeout: 5 * time.Second,
		Options: &smtp.Options{HeloName: "probe.test", MailFrom: "probe@probe.test", RcptTo: []string{"inbox@probe.test"}, SendData: true},
		Delivery: &delivery.Check{Addr: imap.Addr().String(), TLS: delivery.TLSNone, Username: "inbox@probe.test",
			Password: func() (string, error) { return "secret", nil }, Timeout: 3 * time.Second}}
	rec := &recorder{}
	o, err := Run(t.Context(), Target{Plan: plan, Host: host, Port: mustPort(t, portStr), Key: srv.Addr}, Hooks{Transcript: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	if e := o.Hosts[0].Result.Err; e == nil || e.Phase != PhaseDelivery || e.Reason != ReasonAuth {
		t.Fatalf("err = %v, want delivery/auth", e)
	}
	server := 0
	for _, l := range rec.lines {
		if l.Dir == smtp.Server {
			server += len(l.Text)
		}
	}
	text := rec.text()
	if server > 32<<10 || !strings.Contains(text, "transcript truncated") || !strings.Contains(text, "delivery check failed") {
		t.Errorf("%d bytes of server text (want at most 32 KiB, truncated, and the check's own notes kept):\n%s", server, text[max(0, len(text)-2000):])
	}
}
