package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/delivery"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// sent is a message the probe got accepted: its Message-ID and when the
// reply to the final "." came.
type sent struct {
	messageID  string
	acceptedAt time.Time
	start      time.Time
	transcript *lines
}

// lines collects transcript lines.
type lines struct {
	mu sync.Mutex
	l  []string
	// idling, when not nil, is closed at the first continuation request
	// ("+ idling" to IDLE: the check's only command that gets one).
	idling chan struct{}
}

func (l *lines) add(line smtp.TranscriptLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, line.String())
	if l.idling != nil && line.Dir == smtp.Server && strings.HasPrefix(line.Text, "+") {
		close(l.idling)
		l.idling = nil
	}
}

// imap adds a line of the delivery check's transcript.
func (l *lines) imap(dir delivery.Direction, text string) {
	l.add(smtp.TranscriptLine{Dir: smtp.Direction(dir), Text: text})
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}

// sendProbe runs smtp.Probe with a test message to rcpt through the
// instance's plain listener.
func sendProbe(t *testing.T, p *postfix, rcpt string) sent {
	t.Helper()
	tr := &lines{}
	var (
		mu         sync.Mutex
		dotSent    bool
		acceptedAt time.Time
	)
	start := time.Now()
	opts := &smtp.Options{
		HeloName: "probe.test", TLS: smtp.TLSNone,
		MailFrom: "probe@probe.test", RcptTo: []string{rcpt}, SendData: true,
		Transcript: func(l smtp.TranscriptLine) {
			tr.add(l)
			mu.Lock()
			defer mu.Unlock()
			// The first server line after the final "." is the reply to it.
			switch {
			case l.Dir == smtp.Client && l.Text == ".":
				dotSent = true
			case l.Dir == smtp.Server && dotSent && acceptedAt.IsZero():
				acceptedAt = time.Now()
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := smtp.Probe(ctx, "127.0.0.1", port(t, p.plain), opts)
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, tr)
	}
	mu.Lock()
	defer mu.Unlock()
	if res.MessageID == "" || acceptedAt.IsZero() {
		t.Fatalf("no message sent (Message-ID %q)\n%s", res.MessageID, tr)
	}
	return sent{messageID: res.MessageID, acceptedAt: acceptedAt, start: start, transcript: tr}
}

func port(t *testing.T, addr string) uint16 {
	t.Helper()
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// imapCheck is a delivery check of inboxAddr's INBOX on the instance.
func imapCheck(t *testing.T, p *postfix, mode delivery.TLSMode, password string, timeout time.Duration) *delivery.Check {
	t.Helper()
	pem, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := p.imapPlain
	if mode == delivery.TLSImplicit {
		addr = p.imapImplicit
	}
	return &delivery.Check{
		Addr: addr, TLS: mode,
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "mx.probe.test"},
		Username:  inboxAddr,
		Password:  func() (string, error) { return password, nil },
		Mailbox:   "INBOX",
		Timeout:   timeout,
	}
}

// inboxHas reports whether a file of the inbox's Maildir holds the
// Message-ID.
func inboxHas(t *testing.T, p *postfix, messageID string) bool {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(p.inboxMaildir(), sub)
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && strings.Contains(string(b), messageID) {
				return true
			}
		}
	}
	return false
}

func TestDeliveryPostfixDovecot(t *testing.T) {
	p := startPostfixIMAP(t)

	t.Run("delivered", func(t *testing.T) {
		for _, mode := range []delivery.TLSMode{delivery.TLSNone, delivery.TLSStartTLS, delivery.TLSImplicit} {
			t.Run(string(mode), func(t *testing.T) {
				m := sendProbe(t, p, inboxAddr)
				tr := &lines{}
				res, err := delivery.Wait(context.Background(), imapCheck(t, p, mode, inboxPassword, 30*time.Second),
					delivery.Request{MessageID: m.messageID, AcceptedAt: m.acceptedAt, Transcript: tr.imap})
				if err != nil {
					t.Fatalf("CheckDelivery: %v\n%s\n%s", err, tr, p.maillog())
				}
				t.Logf("tls %s: delivered in %v (IDLE %t), whole check %v", mode, res.Delivery, res.Idle, res.Duration)
				// "A few seconds": Postfix hands the message to Dovecot
				// at once; the bound leaves room for a loaded machine.
				if res.Delivery <= 0 || res.Delivery > 15*time.Second || !res.Deleted || !res.Idle {
					t.Errorf("Delivery %v Deleted %t Idle %t, want (0, 15s], true, true", res.Delivery, res.Deleted, res.Idle)
				}
				if inboxHas(t, p, m.messageID) {
					t.Errorf("the message is still in the Maildir")
				}
				text := tr.String()
				for _, want := range []string{"LOGIN <redacted>", "IDLE", "EXISTS", "message found", "EXPUNGE", "message deleted"} {
					if !strings.Contains(text, want) {
						t.Errorf("transcript lacks %q:\n%s", want, text)
					}
				}
				if strings.Contains(text, inboxPassword) {
					t.Errorf("the password is in the transcript:\n%s", text)
				}
			})
		}
	})

	t.Run("arrives during IDLE", func(t *testing.T) {
		m := sendProbe(t, p, heldAddr)
		q := regexp.MustCompile(`queued as ([0-9A-Za-z]+)`).FindStringSubmatch(m.transcript.String())
		if q == nil {
			t.Fatalf("no queue ID in the reply:\n%s", m.transcript)
		}
		idling := make(chan struct{})
		tr := &lines{idling: idling}
		type outcome struct {
			res *delivery.Result
			err *delivery.Error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := delivery.Wait(context.Background(), imapCheck(t, p, delivery.TLSStartTLS, inboxPassword, 30*time.Second),
				delivery.Request{MessageID: m.messageID, AcceptedAt: m.acceptedAt, Transcript: tr.imap})
			done <- outcome{res, err}
		}()
		select {
		case <-idling:
		case o := <-done:
			t.Fatalf("the check ended before IDLE: %v\n%s", o.err, tr)
		}
		released := time.Now()
		if err := p.release(q[1]); err != nil {
			t.Fatal(err)
		}
		o := <-done
		if o.err != nil {
			t.Fatalf("CheckDelivery: %v\n%s\n%s", o.err, tr, p.maillog())
		}
		t.Logf("released from hold %v after acceptance; seen %v after the release (delivery time %v)",
			released.Sub(m.acceptedAt), o.res.SeenAt.Sub(released), o.res.Delivery)
		if o.res.SeenAt.Before(released) || o.res.SeenAt.Sub(released) > 15*time.Second || !o.res.Deleted {
			t.Errorf("seen %v after the release, deleted %t", o.res.SeenAt.Sub(released), o.res.Deleted)
		}
		if inboxHas(t, p, m.messageID) {
			t.Errorf("the message is still in the Maildir")
		}
		if text := tr.String(); !regexp.MustCompile(`C: T\d+ IDLE\n`).MatchString(text) || !strings.Contains(text, "C: DONE") {
			t.Errorf("no IDLE in the transcript:\n%s", text)
		}
	})

	t.Run("held", func(t *testing.T) {
		const timeout = 3 * time.Second
		m := sendProbe(t, p, heldAddr)
		tr := &lines{}
		_, err := delivery.Wait(context.Background(), imapCheck(t, p, delivery.TLSImplicit, inboxPassword, timeout),
			delivery.Request{MessageID: m.messageID, AcceptedAt: m.acceptedAt, Transcript: tr.imap})
		took := time.Since(m.acceptedAt)
		if err == nil || err.Reason != delivery.ReasonTimeout || !strings.Contains(err.Error(), "was not in the mailbox") {
			t.Fatalf("err = %v, want delivery: timeout, not in the mailbox\n%s", err, tr)
		}
		t.Logf("failed %v after acceptance (timeout %v): %v", took, timeout, err)
		if took < timeout || took > timeout+2*time.Second {
			t.Errorf("failed %v after acceptance, want %v (+ at most 2s)", took, timeout)
		}
		if !strings.Contains(p.maillog(), "triggers HOLD action") {
			t.Errorf("Postfix did not hold the message:\n%s", p.maillog())
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "Not-The-Inb0x-Pa55"
		m := sendProbe(t, p, inboxAddr)
		tr := &lines{}
		_, err := delivery.Wait(context.Background(), imapCheck(t, p, delivery.TLSStartTLS, wrong, 10*time.Second),
			delivery.Request{MessageID: m.messageID, AcceptedAt: m.acceptedAt, Transcript: tr.imap})
		if err == nil || err.Reason == delivery.ReasonTimeout {
			t.Fatalf("err = %v, want a delivery failure other than timeout\n%s", err, tr)
		}
		if err.Reason != delivery.ReasonAuth {
			t.Errorf("reason %s, want auth", err.Reason)
		}
		t.Logf("failed after %v: %v", time.Since(m.acceptedAt), err)
		if out := tr.String() + err.Error() + m.transcript.String(); strings.Contains(out, wrong) {
			t.Errorf("the password shows:\n%s", out)
		}
		// The message did arrive: the next check with the right password
		// finds it and cleans up.
		if _, err := delivery.Wait(context.Background(), imapCheck(t, p, delivery.TLSStartTLS, inboxPassword, 30*time.Second),
			delivery.Request{MessageID: m.messageID, AcceptedAt: m.acceptedAt}); err != nil {
			t.Errorf("with the right password: %v", err)
		}
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		dc := imapCheck(t, p, delivery.TLSImplicit, inboxPassword, 10*time.Second)
		dc.TLSConfig = &tls.Config{ServerName: "mx.probe.test"}
		_, err := delivery.Wait(context.Background(), dc, delivery.Request{MessageID: "<1.000000000000000000000000@probe.test>"})
		if err == nil || err.Reason != delivery.ReasonTLS {
			t.Fatalf("err = %v, want delivery: tls", err)
		}
	})

	t.Run("through the exporter", func(t *testing.T) { deliveryThroughExporter(t, p) })
}
