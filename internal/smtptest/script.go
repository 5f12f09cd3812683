package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Conn is the server side of one connection to a Fake server. Everything
// the client sends is recorded, byte for byte.
type Conn struct {
	net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	recv bytes.Buffer
}

// ReadLine reads one line the client sent, with its ending, recording it.
func (c *Conn) ReadLine() (string, error) {
	line, err := c.r.ReadString('\n')
	c.mu.Lock()
	c.recv.WriteString(line)
	c.mu.Unlock()
	return line, err
}

// Send writes s as is.
func (c *Conn) Send(s string) error {
	_, err := c.Write([]byte(s))
	return err
}

// StartTLS switches the connection to TLS as a server.
func (c *Conn) StartTLS(cfg *tls.Config) error {
	tc := tls.Server(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	c.r = bufio.NewReader(tc)
	return nil
}

// Fake serves scripted SMTP on 127.0.0.1:0 (or [::1]:0). Each
// connection runs handler; its outcome and the client's bytes are reported
// over a channel, never by panicking in the server goroutine.
type Fake struct {
	ln      net.Listener
	Host    string // the address listened on, "127.0.0.1" or "::1"
	Port    uint16
	results chan FakeResult
	wg      sync.WaitGroup
}

// FakeResult is what one connection to a Fake saw.
type FakeResult struct {
	Recv string // every byte the client sent
	Err  error  // the handler's error: a script mismatch
}

// NewFake serves handler on a free port of 127.0.0.1 (network "tcp4") or
// [::1] ("tcp6") until the test ends.
func NewFake(t testing.TB, network string, handler func(c *Conn) error) *Fake {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	s, err := NewFakeOn(t, addr, handler)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return s
}

// NewFakeOn is NewFake on addr (a loopback address and port).
func NewFakeOn(t testing.TB, addr string, handler func(c *Conn) error) (*Fake, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s := &Fake{ln: ln, Host: tcp.IP.String(), Port: uint16(tcp.Port), results: make(chan FakeResult, 64)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c := &Conn{Conn: conn, r: bufio.NewReader(conn)}
				herr := handler(c)
				c.Close()
				c.mu.Lock()
				res := FakeResult{Recv: c.recv.String(), Err: herr}
				c.mu.Unlock()
				select {
				case s.results <- res:
				default:
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s, nil
}

// Wait returns the outcome of the next connection to finish.
func (s *Fake) Wait(t testing.TB) FakeResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("fake server: no connection finished within 10s")
		return FakeResult{}
	}
}

// Script returns a handler that plays a dialog. "S: text" sends text with CRLF
// ("\n" inside text separates lines); "C: line" reads a line and requires it
// to be exactly line+CRLF ("C: *" accepts any line); "TLS" starts TLS with
// cfg; "CLOSE" closes the connection at once; "AWAIT" waits until the
// client sends something; "DRAIN" reads until the client closes; "RAW: x"
// sends x without adding a line ending.
func Script(cfg *tls.Config, steps ...string) func(c *Conn) error {
	return func(c *Conn) error {
		for i, st := range steps {
			verb, arg, _ := strings.Cut(st, " ")
			switch verb {
			case "S:":
				if err := c.Send(strings.ReplaceAll(arg, "\n", "\r\n") + "\r\n"); err != nil {
					return fmt.Errorf("step %d %q: %w", i, st, err)
				}
			case "RAW:":
				if err := c.Send(arg); err != nil {
					return fmt.Errorf("step %d %q: %w", i, st, err)
				}
			case "C:":
				line, err := c.ReadLine()
				if err != nil {
					return fmt.Errorf("step %d: want %q, read error: %w", i, arg, err)
				}
				if arg != "*" && line != arg+"\r\n" {
					return fmt.Errorf("step %d: client sent %q, want %q", i, line, arg+"\r\n")
				}
			case "TLS":
				if err := c.StartTLS(cfg); err != nil {
					return fmt.Errorf("step %d: tls: %w", i, err)
				}
			case "CLOSE":
				return nil
			case "AWAIT":
				// wait until the client sends something (a TLS client
				// hello, say), without consuming it
				if _, err := c.r.Peek(1); err != nil {
					return fmt.Errorf("step %d: awaiting the client: %w", i, err)
				}
			case "DRAIN":
				// read whatever else comes until the client closes
				for {
					if _, err := c.ReadLine(); err != nil {
						return nil
					}
				}
			default:
				return fmt.Errorf("bad script step %q", st)
			}
		}
		return nil
	}
}

// Reader is the connection's buffered reader, for a handler that reads
// what Script's steps do not.
func (c *Conn) Reader() *bufio.Reader { return c.r }
