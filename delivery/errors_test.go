package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

func TestDeliveryFailures(t *testing.T) {
	pw := func() (string, error) { return imapPassword, nil }
	tests := []struct {
		name   string
		dc     func(t *testing.T) *Check
		reason Reason
		errHas string
	}{
		{name: "nothing listens", reason: ReasonConnect, dc: func(t *testing.T) *Check {
			return &Check{Addr: testenv.FreeAddr(t), Username: imapUser, Password: pw}
		}},
		{name: "untrusted certificate", reason: ReasonTLS, errHas: "certificate", dc: func(t *testing.T) *Check {
			dc := startIMAP(t, TLSImplicit).checkFor(TLSImplicit)
			dc.TLSConfig = &tls.Config{ServerName: "imap.probe.test"}
			return dc
		}},
		{name: "certificate for another name", reason: ReasonTLS, dc: func(t *testing.T) *Check {
			dc := startIMAP(t, TLSStartTLS).checkFor(TLSStartTLS)
			dc.TLSConfig.ServerName = "other.probe.test"
			return dc
		}},
		{name: "STARTTLS not offered", reason: ReasonUnsupported, errHas: "refused STARTTLS", dc: func(t *testing.T) *Check {
			return startIMAP(t, TLSNone).checkFor(TLSStartTLS)
		}},
		{name: "no such mailbox", reason: ReasonProtocol, errHas: `selecting "Probes"`, dc: func(t *testing.T) *Check {
			dc := startIMAP(t, TLSNone).checkFor(TLSNone)
			dc.Mailbox = "Probes"
			return dc
		}},
		{name: "unreadable password", reason: ReasonConfig, errHas: "no such file", dc: func(t *testing.T) *Check {
			return &Check{Addr: testenv.FreeAddr(t), Username: imapUser,
				Password: func() (string, error) { return "", errors.New("open imap.password: no such file") }}
		}},
		{name: "no password", reason: ReasonConfig, dc: func(t *testing.T) *Check {
			return &Check{Addr: testenv.FreeAddr(t), Username: imapUser}
		}},
		{name: "address without port", reason: ReasonConfig, dc: func(*testing.T) *Check {
			return &Check{Addr: "127.0.0.1", Username: imapUser, Password: pw}
		}},
		{name: "unknown tls mode", reason: ReasonConfig, dc: func(t *testing.T) *Check {
			return &Check{Addr: testenv.FreeAddr(t), TLS: "ssl", Username: imapUser, Password: pw}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			res, err := Wait(context.Background(), tt.dc(t), Request{MessageID: probeID(time.Now()), Transcript: rec.add})
			if err == nil || err.Reason != tt.reason {
				t.Fatalf("err = %v, want %s\n%s", err, tt.reason, rec.text())
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to mention %q", err, tt.errHas)
			}
			if res == nil || res.Deleted || !res.SeenAt.IsZero() {
				t.Errorf("result %+v", res)
			}
			if strings.Contains(rec.text()+err.Error(), imapPassword) {
				t.Errorf("the password shows")
			}
		})
	}
}

func TestDeliveryNoMessageID(t *testing.T) {
	dc := &Check{Addr: testenv.FreeAddr(t), Username: imapUser, Password: func() (string, error) { return imapPassword, nil }}
	_, err := Wait(context.Background(), dc, Request{})
	if err == nil || err.Reason != ReasonConfig {
		t.Fatalf("err = %v, want config", err)
	}
}

// Servers that misbehave: the check ends in time with the right reason, and
// its connection is closed.
func TestDeliveryHostileServers(t *testing.T) {
	const timeout = 700 * time.Millisecond
	pki := testpki.Valid(t, "imap.probe.test")
	tests := []struct {
		name    string
		mode    TLSMode
		handler func(c net.Conn, r *bufio.Reader) error
		reason  Reason
		errHas  string
	}{
		{name: "no greeting", reason: ReasonTimeout, handler: func(_ net.Conn, r *bufio.Reader) error {
			_, err := r.ReadString('\n') // returns when the client hangs up
			return ignoreClosed(err)
		}},
		{name: "no answer to LOGIN", reason: ReasonTimeout, handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] ready\r\n")
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return ignoreClosed(err)
				}
			}
		}},
		{name: "endless greeting", reason: ReasonTimeout, handler: func(c net.Conn, _ *bufio.Reader) error {
			chunk := []byte(strings.Repeat("x", 4096))
			c.Write([]byte("* OK "))
			for {
				if _, err := c.Write(chunk); err != nil {
					return nil
				}
			}
		}},
		{name: "closed after the greeting", reason: ReasonClosed, handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] ready\r\n")
			r.ReadString('\n')
			return nil
		}},
		{name: "BYE greeting", reason: ReasonClosed, handler: func(c net.Conn, _ *bufio.Reader) error {
			fmt.Fprint(c, "* BYE too busy\r\n")
			return nil
		}},
		{name: "STARTTLS refused", mode: TLSStartTLS, reason: ReasonUnsupported, errHas: "not now", handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK ready\r\n")
			if line, err := r.ReadString('\n'); err != nil || line != "S1 STARTTLS\r\n" {
				return fmt.Errorf("got %q, %v", line, err)
			}
			fmt.Fprint(c, "S1 NO not now\r\n")
			return nil
		}},
		{name: "data injected after STARTTLS", mode: TLSStartTLS, reason: ReasonProtocol, errHas: "before the TLS handshake", handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK ready\r\n")
			r.ReadString('\n')
			fmt.Fprint(c, "S1 OK go\r\n* OK [CAPABILITY IMAP4rev1] injected\r\n")
			return nil
		}},
		{name: "PREAUTH before STARTTLS", mode: TLSStartTLS, reason: ReasonProtocol, errHas: "PREAUTH", handler: func(c net.Conn, _ *bufio.Reader) error {
			fmt.Fprint(c, "* PREAUTH welcome\r\n")
			return nil
		}},
		{name: "handshake never finishes", mode: TLSImplicit, reason: ReasonTimeout, handler: func(_ net.Conn, r *bufio.Reader) error {
			_, err := io.Copy(io.Discard, r) // the ClientHello, then nothing
			return ignoreClosed(err)
		}},
		{name: "plain text where TLS belongs", mode: TLSImplicit, reason: ReasonTLS, handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK plain IMAP here\r\n")
			r.ReadString('\n')
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, done := scriptedIMAP(t, tt.handler)
			dc := &Check{Addr: addr, TLS: tt.mode, Username: imapUser, Timeout: timeout,
				TLSConfig: &tls.Config{RootCAs: pki.Pool, ServerName: "imap.probe.test"},
				Password:  func() (string, error) { return imapPassword, nil }}
			rec := &recorder{}
			start := time.Now()
			_, err := Wait(context.Background(), dc, Request{MessageID: probeID(start), Transcript: rec.add})
			took := time.Since(start)
			if err == nil || err.Reason != tt.reason {
				t.Fatalf("err = %v, want %s\n%s", err, tt.reason, rec.text())
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("err = %v, want it to mention %q", err, tt.errHas)
			}
			if took > timeout+2*time.Second {
				t.Errorf("took %v, want at most %v + 2s", took, timeout)
			}
			// The server sees the connection closed: its handler returns.
			select {
			case serr := <-done:
				if serr != nil {
					t.Errorf("server: %v", serr)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the connection is still open 10s after the check returned")
			}
		})
	}
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") ||
		strings.Contains(err.Error(), "connection reset") {
		return nil
	}
	return err
}

// TestDeliveryServerTextIsSafe: what an IMAP server says reaches the
// check's error escaped (no ESC to recolour a terminal, no newline to forge
// a line), and an echo of the credentials, in any encoding the check sent
// them, is redacted from the error and the transcript.
func TestDeliveryServerTextIsSafe(t *testing.T) {
	blob := base64.StdEncoding.EncodeToString([]byte("\x00" + imapUser + "\x00" + imapPassword))
	tests := []struct {
		name    string
		handler func(c net.Conn, r *bufio.Reader) error
	}{
		{name: "LOGIN refused with ESC and a forged line", handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1] ready\r\n")
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			tag, _, _ := strings.Cut(line, " ")
			fmt.Fprintf(c, "%s NO \x1b[32mProbe succeeded\x1b[0m\u202e %s\r\n", tag, imapPassword)
			return ignoreClosed(drain(r))
		}},
		{name: "AUTHENTICATE PLAIN echoed", handler: func(c net.Conn, r *bufio.Reader) error {
			fmt.Fprint(c, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] ready\r\n")
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			if !strings.HasPrefix(rest, "AUTHENTICATE PLAIN") {
				return fmt.Errorf("got %q, want AUTHENTICATE PLAIN", line)
			}
			sent := strings.TrimSpace(strings.TrimPrefix(rest, "AUTHENTICATE PLAIN"))
			if sent == "" { // no SASL-IR: the response comes on its own line
				fmt.Fprint(c, "+ \r\n")
				if sent, err = r.ReadString('\n'); err != nil {
					return err
				}
				sent = strings.TrimSpace(sent)
			}
			fmt.Fprintf(c, "* OK you said %s\r\n%s NO [AUTHENTICATIONFAILED] bad credentials %s\r\n", sent, tag, sent)
			return ignoreClosed(drain(r))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := scriptedIMAP(t, tt.handler)
			dc := &Check{Addr: addr, Username: imapUser, Timeout: 5 * time.Second,
				Password: func() (string, error) { return imapPassword, nil }}
			rec := &recorder{}
			_, err := Wait(context.Background(), dc, Request{MessageID: probeID(time.Now()), Transcript: rec.add})
			if err == nil || err.Reason != ReasonAuth {
				t.Fatalf("err = %v, want auth\n%s", err, rec.text())
			}
			text := err.Error() + "\n" + rec.text()
			for _, bad := range []string{"\x1b", "\u202e", imapPassword, blob} {
				if strings.Contains(text, bad) {
					t.Errorf("%q shows in the error or the transcript:\n%s", bad, text)
				}
			}
		})
	}
}

// drain reads until the client hangs up.
func drain(r *bufio.Reader) error {
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
	}
}
