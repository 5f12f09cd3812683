package integration

import (
	"bufio"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// starttlsServer is a small SMTP server on 127.0.0.1:0 that offers STARTTLS
// with the certificate chain of cfg, for the DANE tests: an outside client
// (the exporter's own probe, posttls-finger) sees exactly that chain.
type starttlsServer struct {
	Port uint16
	// Errs receives what went wrong in a session (never blocks; a test
	// reads it when it wants to know).
	Errs chan error
	// sni receives the server name of every ClientHello (never blocks).
	sni chan string
}

func startSTARTTLS(t *testing.T, name string, cfg *tls.Config) *starttlsServer {
	t.Helper()
	s, err := startSTARTTLSOn(t, name, cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startSTARTTLSOn is startSTARTTLS on addr (a loopback address and port,
// e.g. "[::1]:2525"), or the error of listening there.
func startSTARTTLSOn(t *testing.T, name string, cfg *tls.Config, addr string) (*starttlsServer, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &starttlsServer{Port: uint16(ln.Addr().(*net.TCPAddr).Port), Errs: make(chan error, 16), sni: make(chan string, 16)}
	cfg = cfg.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case s.sni <- hello.ServerName:
		default:
		}
		return nil, nil
	}
	smtptest.Serve(t, ln, func(c net.Conn) {
		if err := s.session(c, name, cfg); err != nil {
			select {
			case s.Errs <- err:
			default:
			}
		}
	})
	return s, nil
}

// session speaks a bounded SMTP dialog: EHLO (STARTTLS offered before TLS),
// STARTTLS, EHLO again, then 250 to anything but QUIT.
func (s *starttlsServer) session(c net.Conn, name string, cfg *tls.Config) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	conn := net.Conn(c)
	r := bufio.NewReader(conn)
	say := func(lines ...string) error {
		_, err := conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
		return err
	}
	if err := say("220 " + name + " ESMTP lab"); err != nil {
		return err
	}
	secure := false
	for n := 0; n < 50; n++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil // the client went away
		}
		verb := strings.ToUpper(strings.Fields(strings.TrimSpace(line) + " x")[0])
		switch {
		case verb == "EHLO" && !secure:
			err = say("250-"+name, "250-SIZE 1000000", "250 STARTTLS")
		case verb == "EHLO":
			err = say("250-"+name, "250 SIZE 1000000")
		case verb == "HELO":
			err = say("250 " + name)
		case verb == "STARTTLS" && !secure:
			if err = say("220 2.0.0 ready to start TLS"); err != nil {
				return err
			}
			tc := tls.Server(c, cfg)
			if err = tc.Handshake(); err != nil {
				return nil // a client that refuses the certificate hangs up here
			}
			conn, r, secure = tc, bufio.NewReader(tc), true
		case verb == "QUIT":
			return say("221 2.0.0 bye")
		default:
			err = say("250 2.0.0 ok")
		}
		if err != nil {
			return err
		}
	}
	return say("421 4.7.0 too many commands")
}

// SNIs returns the server names the ClientHellos carried since the last
// call ("" for a hello without one), oldest first.
func (s *starttlsServer) SNIs() []string {
	var out []string
	for {
		select {
		case n := <-s.sni:
			out = append(out, n)
		default:
			return out
		}
	}
}

func (s *starttlsServer) addr() string { return "127.0.0.1:" + strconv.Itoa(int(s.Port)) }
