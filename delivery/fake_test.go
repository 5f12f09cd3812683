package delivery

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// The fake mailbox's account.
const (
	imapUser     = "probe-inbox@probe.test"
	imapPassword = "S3cret-Imap-Pa55"
)

// fakeIMAP is an in-memory IMAP server (go-imap's imapmemserver) on
// 127.0.0.1:0, with one account whose INBOX the tests fill.
type fakeIMAP struct {
	addr string
	user *imapmemserver.User
	pki  *testpki.PKI
}

// startIMAP serves IMAP with the given TLS mode: none (no STARTTLS offered),
// starttls (STARTTLS offered) or implicit (TLS from the first byte).
func startIMAP(t *testing.T, mode TLSMode) *fakeIMAP {
	t.Helper()
	return startIMAPWith(t, mode, nil)
}

// startIMAPWith is startIMAP with each session wrapped by wrap (nil: as is).
func startIMAPWith(t *testing.T, mode TLSMode, wrap func(imapserver.Session) imapserver.Session) *fakeIMAP {
	t.Helper()
	f := &fakeIMAP{pki: testpki.Valid(t, "imap.probe.test", "127.0.0.1")}
	mem := imapmemserver.New()
	f.user = imapmemserver.NewUser(imapUser, imapPassword)
	if err := f.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(f.user)
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			var s imapserver.Session = idleSession{mem.NewSession()}
			if wrap != nil {
				s = wrap(s)
			}
			return s, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	}
	if mode == TLSStartTLS {
		opts.TLSConfig = f.pki.Server
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if mode == TLSImplicit {
		ln = tls.NewListener(ln, f.pki.Server)
	}
	f.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return f
}

// idleSession reports mailbox updates during IDLE by looking for them every
// 10ms: imapmemserver's own IDLE misses an update queued between its "+"
// and the start of its watch, which would make the tests flaky.
type idleSession struct{ imapserver.Session }

func (s idleSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// deliver appends a message with the given Message-ID to the INBOX, as the
// probe's (X-Mailer: smtp_exporter) when probe is true.
func (f *fakeIMAP) deliver(t *testing.T, messageID string, probe bool) {
	t.Helper()
	var b strings.Builder
	b.WriteString("From: <probe@probe.test>\r\nTo: <" + imapUser + ">\r\nSubject: test\r\n")
	b.WriteString("Message-ID: " + messageID + "\r\n")
	if probe {
		b.WriteString("X-Mailer: smtp_exporter\r\n")
	}
	b.WriteString("\r\nbody\r\n")
	if _, err := f.user.Append("INBOX", bytes.NewReader([]byte(b.String())), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// messages counts the messages in the INBOX.
func (f *fakeIMAP) messages(t *testing.T) uint32 {
	t.Helper()
	st, err := f.user.Status("INBOX", &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return *st.NumMessages
}

// has reports whether a message with the Message-ID is in the INBOX, by a
// search in a session of the test's own.
func (f *fakeIMAP) has(t *testing.T, messageID string) bool {
	t.Helper()
	sess := imapmemserver.NewUserSession(f.user)
	defer sess.Close()
	if _, err := sess.Select("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	data, err := sess.Search(imapserver.NumKindUID, &imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: messageID}}}, &imap.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return len(data.AllUIDs()) > 0
}

// probeID makes a Message-ID of the probe's form, sent at t.
func probeID(t time.Time) string {
	var b [12]byte
	rand.Read(b[:])
	return fmt.Sprintf("<%d.%s@probe.test>", t.Unix(), hex.EncodeToString(b[:]))
}

// recorder collects a check's transcript and lets a test wait for a line.
type recorder struct {
	mu       sync.Mutex
	lines    []string // "C: text", "S: text", "*: text"
	watchers []watcher
}

type watcher struct {
	re *regexp.Regexp
	n  int // matches still to see
	ch chan struct{}
}

func (r *recorder) add(dir Direction, text string) {
	l := string(rune(dir)) + ": " + text
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	kept := r.watchers[:0]
	for _, w := range r.watchers {
		if w.re.MatchString(l) {
			w.n--
		}
		if w.n == 0 {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	r.watchers = kept
}

// when returns a channel closed once n lines (as String formats them) have
// matched pattern, counting lines already seen.
func (r *recorder) when(pattern string, n int) <-chan struct{} {
	re := regexp.MustCompile(pattern)
	ch := make(chan struct{})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if re.MatchString(l) {
			n--
		}
	}
	if n <= 0 {
		close(ch)
		return ch
	}
	r.watchers = append(r.watchers, watcher{re: re, n: n, ch: ch})
	return ch
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// noIdleProxy forwards connections to backend, removing IDLE from every
// capability list the server sends, and reports each IDLE command a client
// sends anyway.
type noIdleProxy struct {
	addr     string
	idleSent chan string
}

var idleCap = regexp.MustCompile(`(?i) IDLE\b`)

func startNoIdleProxy(t *testing.T, backend string) *noIdleProxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &noIdleProxy{addr: ln.Addr().String(), idleSent: make(chan string, 16)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp4", backend)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer b.Close()
				p.copyLines(b, c, func(line string) string {
					if fields := strings.Fields(line); len(fields) >= 2 && strings.EqualFold(fields[1], "IDLE") {
						select {
						case p.idleSent <- line:
						default:
						}
					}
					return line
				})
			}()
			go func() {
				defer wg.Done()
				defer c.Close()
				p.copyLines(c, b, func(line string) string {
					if strings.Contains(strings.ToUpper(line), "CAPABILITY") {
						return idleCap.ReplaceAllString(line, "")
					}
					return line
				})
			}()
		}
	}()
	return p
}

func (p *noIdleProxy) copyLines(dst io.Writer, src io.Reader, edit func(string) string) {
	br := bufio.NewReader(src)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if _, werr := io.WriteString(dst, edit(line)); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// scriptedIMAP serves one connection with handler, on 127.0.0.1:0, and
// reports the handler's error over a channel.
func scriptedIMAP(t *testing.T, handler func(c net.Conn, r *bufio.Reader) error) (addr string, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		c, err := ln.Accept()
		if err != nil {
			ch <- err
			return
		}
		defer c.Close()
		ch <- handler(c, bufio.NewReader(c))
	}()
	t.Cleanup(func() {
		ln.Close()
		<-fin
	})
	return ln.Addr().String(), ch
}
