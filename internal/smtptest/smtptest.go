// Package smtptest runs loopback SMTP servers for tests: a responder with a
// few fixed behaviours that counts the connections it accepts.
package smtptest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is a loopback SMTP responder. It counts the connections it accepts,
// so a test can assert that nothing was dialled.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Accepted counts the connections accepted so far.
	Accepted atomic.Int64
}

// Behaviours of a Server.
const (
	OK         = "ok"          // accepts everything
	RejectRcpt = "reject-rcpt" // RCPT gets 550 5.1.1
	Busy       = "busy"        // greets with 421 #4.4.5
	Tarpit     = "tarpit"      // accepts and never speaks
	Drip       = "drip"        // sends its greeting a byte every 20ms
	Endless    = "endless"     // sends a multi-line greeting without end
	Reset      = "reset"       // greets, reads a command, resets the connection
	NotTLS     = "not-tls"     // answers a TLS client hello with plain text
	ShutDown   = "shutdown"    // greets with 421 4.3.2, answers QUIT with 221
	Maximal    = "maximal"     // every reply is 128 lines of 4 KiB (the client's limits), EHLO with 127 keywords
	Slow       = "slow"        // greets after a second, then accepts everything
)

// maximalReply is a reply of 128 lines of 4096 bytes each, the most a
// client reads; with ehlo, each line after the first is a made-up keyword.
func maximalReply(code string, ehlo bool) []byte {
	var b strings.Builder
	for i := range 128 {
		sep := "-"
		if i == 127 {
			sep = " "
		}
		l := code + sep + "4.4.5 maximal "
		if ehlo && i > 0 {
			l = fmt.Sprintf("%s%sX-KEYWORD-%03d params ", code, sep, i)
		}
		b.WriteString(l + strings.Repeat("x", 4096-len(l)) + "\r\n")
	}
	return []byte(b.String())
}

var maximal = map[string][]byte{"220": maximalReply("220", false), "250": maximalReply("250", true), "221": maximalReply("221", false)}

// Start serves mode on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, mode string) *Server {
	t.Helper()
	s, err := StartOn(t, mode, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StartOn serves mode on addr (a loopback address) until the test ends.
func StartOn(t testing.TB, mode, addr string) (*Server, error) {
	t.Helper()
	return startOn(t, mode, addr, nil)
}

// StartSTARTTLS serves OK on 127.0.0.1:0 until the test ends, offering
// STARTTLS with cfg (its certificate is what the client is shown).
func StartSTARTTLS(t testing.TB, cfg *tls.Config) *Server {
	t.Helper()
	s, err := startOn(t, OK, "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startOn(t testing.TB, mode, addr string, cfg *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &Server{Addr: ln.Addr().String()}
	Serve(t, ln, func(c net.Conn) {
		f.Accepted.Add(1)
		serve(c, mode, cfg)
	})
	return f, nil
}

// Serve accepts connections on ln until the test ends, each handled by
// handle in a goroutine of its own and closed when handle returns. At the
// end of the test the listener and every open connection are closed, and
// Serve's goroutines are waited for: a test leaks none.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { mu.Lock(); delete(conns, c); mu.Unlock(); c.Close() }()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// Respond answers c as a Server in mode does, for a listener of the test's
// own (a TLS one, say).
func Respond(c net.Conn, mode string) { serve(c, mode, nil) }

// serve plays mode on c; with cfg, EHLO offers STARTTLS, which upgrades
// the connection with cfg.
func serve(c net.Conn, mode string, cfg *tls.Config) {
	r := bufio.NewReader(c)
	buf := make([]byte, 512)
	switch mode {
	case Tarpit:
		r.ReadString('\n') // until the client gives up
		return
	case Drip:
		for _, b := range []byte("220 dripping slowly") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		return
	case Endless:
		line := []byte(strings.Repeat("220-endless greeting\r\n", 64))
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	case Reset:
		c.Write([]byte("220 hi\r\n"))
		c.Read(buf)
		c.(*net.TCPConn).SetLinger(0)
		return
	case NotTLS:
		c.Write([]byte("this is not a TLS server hello\r\n"))
		c.Read(buf)
		return
	case ShutDown:
		c.Write([]byte("421 4.3.2 Service shutting down\r\n"))
	case Busy:
		c.Write([]byte("421 #4.4.5 Too many connections from your host\r\n"))
	case Maximal:
		c.Write(maximal["220"])
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(strings.ToUpper(line), "QUIT") {
				c.Write(maximal["221"])
				return
			}
			c.Write(maximal["250"])
		}
	case Slow:
		time.Sleep(time.Second)
		c.Write([]byte("220 fake.test ESMTP\r\n"))
	default:
		c.Write([]byte("220 fake.test ESMTP\r\n"))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO") && cfg != nil:
			c.Write([]byte("250-fake.test\r\n250-SIZE 1048576\r\n250-STARTTLS\r\n250 PIPELINING\r\n"))
		case strings.HasPrefix(cmd, "EHLO"):
			c.Write([]byte("250-fake.test\r\n250-SIZE 1048576\r\n250-8BITMIME\r\n250 PIPELINING\r\n"))
		case cmd == "STARTTLS" && cfg != nil:
			c.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
			tc := tls.Server(c, cfg)
			if tc.Handshake() != nil {
				return
			}
			c, r, cfg = tc, bufio.NewReader(tc), nil
		case strings.HasPrefix(cmd, "RCPT") && mode == RejectRcpt:
			c.Write([]byte("550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n"))
		case cmd == "DATA":
			c.Write([]byte("354 go ahead\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			c.Write([]byte("250 2.0.0 Ok: queued\r\n"))
		case cmd == "QUIT":
			c.Write([]byte("221 2.0.0 Bye\r\n"))
			return
		default:
			c.Write([]byte("250 2.0.0 Ok\r\n"))
		}
	}
}
