package collector

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// scripted is a loopback SMTP server that greets with banner and answers
// each command by its verb from replies ("EHLO", "MAIL", "RCPT", ...; a
// missing verb gets "250 2.0.0 Ok"). With tlsConfig, STARTTLS upgrades the
// connection and afterTLS replaces replies.
type scripted struct {
	banner            string
	replies, afterTLS map[string]string
	tlsConfig         *tls.Config
}

// start serves s on addr ("127.0.0.1:0" for any port) until the test ends,
// and returns the address.
func (s scripted) start(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	smtptest.Serve(t, ln, s.serve)
	return ln.Addr().String()
}

// serve plays the script on one connection (closed by the caller).
func (s scripted) serve(c net.Conn) {
	replies := s.replies
	r := bufio.NewReader(c)
	c.Write([]byte(s.banner + "\r\n"))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
		verb, _, _ = strings.Cut(verb, ":")
		reply, ok := replies[verb]
		switch {
		case verb == "QUIT":
			c.Write([]byte("221 2.0.0 Bye\r\n"))
			return
		case verb == "STARTTLS" && s.tlsConfig != nil:
			c.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
			tc := tls.Server(c, s.tlsConfig)
			if tc.Handshake() != nil {
				return
			}
			c, r, replies = tc, bufio.NewReader(tc), s.afterTLS
			continue
		case verb == "DATA" && !ok:
			c.Write([]byte("354 go ahead\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
			}
			reply = "250 2.0.0 Ok: queued"
		case !ok:
			reply = "250 2.0.0 Ok"
		}
		c.Write([]byte(strings.ReplaceAll(reply, "\n", "\r\n") + "\r\n"))
	}
}
