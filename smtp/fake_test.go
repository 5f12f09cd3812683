package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConn is the server side of one connection to a fake server. Everything
// the client sends is recorded, byte for byte.
type fakeConn struct {
	net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	recv bytes.Buffer
}

// readLine reads one line the client sent, with its ending, recording it.
func (c *fakeConn) readLine() (string, error) {
	line, err := c.r.ReadString('\n')
	c.mu.Lock()
	c.recv.WriteString(line)
	c.mu.Unlock()
	return line, err
}

// send writes s as is.
func (c *fakeConn) send(s string) error {
	_, err := c.Write([]byte(s))
	return err
}

// startTLS switches the connection to TLS as a server.
func (c *fakeConn) startTLS(cfg *tls.Config) error {
	tc := tls.Server(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.Conn = tc
	c.r = bufio.NewReader(tc)
	return nil
}

// fakeServer serves scripted SMTP on 127.0.0.1:0 (or [::1]:0). Each
// connection runs handler; its outcome and the client's bytes are reported
// over a channel, never by panicking in the server goroutine.
type fakeServer struct {
	ln      net.Listener
	host    string
	port    uint16
	results chan fakeResult
	wg      sync.WaitGroup
}

type fakeResult struct {
	recv string // every byte the client sent
	err  error  // the handler's error: a script mismatch
}

func newFakeServer(t testing.TB, network string, handler func(c *fakeConn) error) *fakeServer {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	s, err := newFakeServerOn(t, addr, handler)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return s
}

// newFakeServerOn is newFakeServer on addr (a loopback address and port).
func newFakeServerOn(t testing.TB, addr string, handler func(c *fakeConn) error) (*fakeServer, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	tcp := ln.Addr().(*net.TCPAddr)
	s := &fakeServer{ln: ln, host: tcp.IP.String(), port: uint16(tcp.Port), results: make(chan fakeResult, 64)}
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
				c := &fakeConn{Conn: conn, r: bufio.NewReader(conn)}
				herr := handler(c)
				c.Close()
				c.mu.Lock()
				res := fakeResult{recv: c.recv.String(), err: herr}
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

// wait returns the outcome of the next connection to finish.
func (s *fakeServer) wait(t testing.TB) fakeResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("fake server: no connection finished within 10s")
		return fakeResult{}
	}
}

// script returns a handler that plays a dialog. "S: text" sends text with CRLF
// ("\n" inside text separates lines); "C: line" reads a line and requires it
// to be exactly line+CRLF ("C: *" accepts any line); "TLS" starts TLS with
// cfg; "CLOSE" closes the connection at once; "AWAIT" waits until the
// client sends something; "DRAIN" reads until the client closes; "RAW: x"
// sends x without adding a line ending.
func script(cfg *tls.Config, steps ...string) func(c *fakeConn) error {
	return func(c *fakeConn) error {
		for i, st := range steps {
			verb, arg, _ := strings.Cut(st, " ")
			switch verb {
			case "S:":
				if err := c.send(strings.ReplaceAll(arg, "\n", "\r\n") + "\r\n"); err != nil {
					return fmt.Errorf("step %d %q: %w", i, st, err)
				}
			case "RAW:":
				if err := c.send(arg); err != nil {
					return fmt.Errorf("step %d %q: %w", i, st, err)
				}
			case "C:":
				line, err := c.readLine()
				if err != nil {
					return fmt.Errorf("step %d: want %q, read error: %w", i, arg, err)
				}
				if arg != "*" && line != arg+"\r\n" {
					return fmt.Errorf("step %d: client sent %q, want %q", i, line, arg+"\r\n")
				}
			case "TLS":
				if err := c.startTLS(cfg); err != nil {
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
					if _, err := c.readLine(); err != nil {
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

// probeFake probes s with opts under a timeout.
func probeFake(t testing.TB, s *fakeServer, opts *Options, timeout time.Duration) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Probe(ctx, s.host, s.port, opts)
}

func baseOptions() *Options {
	return &Options{HeloName: "probe.test"}
}

// phases lists the phase names of a result, in order.
func phases(r *Result) string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, string(p.Phase))
	}
	return strings.Join(names, " ")
}
