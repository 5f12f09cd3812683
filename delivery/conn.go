package delivery

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

// The connection layers of a delivery check, from the socket up:
//
//	TCP -> boundedConn (no deadline past the check's) -> [tls.Conn] ->
//	imapConn (transcript, redaction) -> [greetedConn after STARTTLS] -> imapclient
//
// The transcript sits above TLS, so it shows the IMAP lines in clear.

// boundedConn caps every deadline set on the connection at the check's own
// deadline, so the IMAP client's longer per-command timeouts, and its
// unbounded wait during IDLE, never outlive the check.
type boundedConn struct {
	net.Conn
	deadline time.Time
}

func (c *boundedConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error      { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *boundedConn) SetReadDeadline(t time.Time) error  { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *boundedConn) SetWriteDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(c.clamp(t)) }

// Transcript limits: the longest line shown, and the most bytes buffered
// while waiting for the end of a line.
const (
	imapLineShown = 512
	imapLineMax   = 8 << 10
)

// imapLog turns the bytes of an IMAP connection into transcript lines: one
// line per CRLF-terminated line in each direction, server text made safe,
// LOGIN and AUTHENTICATE redacted, and the password scrubbed wherever it
// would appear. It is safe for concurrent use: the IMAP client reads in a
// goroutine of its own.
type imapLog struct {
	mu      sync.Mutex
	out     func(Direction, string) // nil: no transcript
	secrets []string
	// bufs holds the unfinished line of each direction; skip is set while
	// the rest of an over-long line is dropped.
	bufs [2][]byte
	skip [2]bool
	// secretTag is the tag of a LOGIN or AUTHENTICATE command in flight:
	// every client line until its tagged reply is redacted (a password sent
	// as a literal, SASL responses).
	secretTag string
}

func newIMAPLog(out func(Direction, string)) *imapLog {
	return &imapLog{out: out}
}

// addSecret registers a value (the password) to be scrubbed from every line
// and error, in its raw and its IMAP-quoted form.
func (l *imapLog) addSecret(s string) {
	if s == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.secrets = append(l.secrets, s)
	if q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s); q != s {
		l.secrets = append(l.secrets, q)
	}
}

// scrub replaces every registered secret in s.
func (l *imapLog) scrub(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.scrubLocked(s)
}

func (l *imapLog) scrubLocked(s string) string {
	for _, sec := range l.secrets {
		s = strings.ReplaceAll(s, sec, "<redacted>")
	}
	return s
}

// scrubErr returns err with every secret scrubbed from its text, and the
// text a server controls made safe (textsafe). The original stays
// reachable with errors.Is and errors.As.
func (l *imapLog) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{msg: textsafe.Text(l.scrub(err.Error())), err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// note adds a line of what the check did.
func (l *imapLog) note(format string, args ...any) {
	if l.out == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emitLocked(Note, l.scrubLocked(fmt.Sprintf(format, args...)))
}

func (l *imapLog) emitLocked(dir Direction, text string) {
	l.out(dir, text)
}

// imapCommand matches the start of a client command line: tag, command.
var imapCommand = regexp.MustCompile(`^(\S+) (?i:(LOGIN|AUTHENTICATE))\b`)

// data records bytes sent (Client) or received (Server).
func (l *imapLog) data(dir Direction, p []byte) {
	if l.out == nil || len(p) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	if dir == Server {
		i = 1
	}
	buf := append(l.bufs[i], p...)
	for {
		n := bytes.IndexByte(buf, '\n')
		if n < 0 {
			break
		}
		if !l.skip[i] {
			l.lineLocked(dir, bytes.TrimSuffix(buf[:n], []byte("\r")))
		}
		l.skip[i] = false
		buf = buf[n+1:]
	}
	if len(buf) > imapLineMax {
		// An endless line: show its start, drop the rest up to its end (so
		// that no piece of it, or of a secret in it, shows on its own).
		if !l.skip[i] {
			l.lineLocked(dir, buf)
		}
		l.skip[i] = true
		buf = buf[:0]
	}
	l.bufs[i] = append(l.bufs[i][:0], buf...)
}

func (l *imapLog) lineLocked(dir Direction, line []byte) {
	// Scrub before clipping, so that no piece of a secret is left.
	text := textsafe.Clip([]byte(l.scrubLocked(string(line))), imapLineShown)
	if dir == Client {
		if m := imapCommand.FindStringSubmatch(text); m != nil {
			l.secretTag = m[1]
			text = m[1] + " " + strings.ToUpper(m[2]) + " <redacted>"
		} else if l.secretTag != "" {
			text = "<redacted>"
		}
	} else if l.secretTag != "" && strings.HasPrefix(text, l.secretTag+" ") {
		l.secretTag = ""
	}
	l.emitLocked(dir, text)
}

// imapConn records what passes through it in the transcript.
type imapConn struct {
	net.Conn
	log *imapLog
}

func (c *imapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.log.data(Server, p[:n])
	return n, err
}

func (c *imapConn) Write(p []byte) (int, error) {
	c.log.data(Client, p)
	return c.Conn.Write(p)
}

// greetedConn replays a greeting before the connection's own bytes: the IMAP
// client expects one, and after STARTTLS (done before the client takes the
// connection, so the transcript shows it in clear) the server sends none.
// The client then asks for the capabilities anew, as RFC 9051 requires after
// STARTTLS.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (c *greetedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func newGreetedConn(c net.Conn) net.Conn {
	return &greetedConn{Conn: c, r: io.MultiReader(strings.NewReader("* OK TLS started\r\n"), c)}
}

// errSTARTTLSRefused marks a STARTTLS that the server did not accept.
var errSTARTTLSRefused = errors.New("the server refused STARTTLS")

// startTLS reads the greeting, sends STARTTLS and waits for its tagged reply
// on conn (which records the transcript). It returns when the server has
// agreed; the caller then runs the handshake on the connection beneath.
func startTLS(conn net.Conn) error {
	br := bufio.NewReaderSize(conn, 1024)
	greeting, err := readIMAPLine(br)
	if err != nil {
		return fmt.Errorf("reading the greeting: %w", err)
	}
	switch {
	case hasPrefixFold(greeting, "* OK"):
	case hasPrefixFold(greeting, "* PREAUTH"):
		return errors.New("the server sent PREAUTH before STARTTLS: refusing an unencrypted session")
	default:
		return fmt.Errorf("unexpected greeting %q", textsafe.Clip([]byte(greeting), 80))
	}
	const tag = "S1"
	if _, err := io.WriteString(conn, tag+" STARTTLS\r\n"); err != nil {
		return fmt.Errorf("sending STARTTLS: %w", err)
	}
	for range 32 { // untagged lines before the reply, bounded
		line, err := readIMAPLine(br)
		if err != nil {
			return fmt.Errorf("reading the reply to STARTTLS: %w", err)
		}
		if !strings.HasPrefix(line, tag+" ") {
			continue
		}
		if !hasPrefixFold(line[len(tag)+1:], "OK") {
			return fmt.Errorf("%w: %s", errSTARTTLSRefused, textsafe.Clip([]byte(line), 200))
		}
		// Anything sent after the OK and before the handshake would be
		// injected into the encrypted session (CVE-2011-0411 and kin).
		if br.Buffered() > 0 {
			return errors.New("the server sent data after its STARTTLS reply, before the TLS handshake")
		}
		return nil
	}
	return errors.New("too many lines before the reply to STARTTLS")
}

// readIMAPLine reads one line of at most 1024 bytes, without its CRLF.
func readIMAPLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: a line longer than %d bytes", ErrProtocol, br.Size())
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(line, "\r\n")), nil
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// imapTLSConfig returns a copy of cfg for host, with ServerName defaulted to
// host and the "imap" ALPN protocol.
func imapTLSConfig(cfg *tls.Config, host string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"imap"}
	}
	return cfg
}
