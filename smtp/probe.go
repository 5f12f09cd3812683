package smtp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"
)

// Probe runs one SMTP dialog with host:port as opts describe, within ctx's
// deadline (DefaultTimeout when it has none). opts must have passed Validate.
// It always returns a Result, filled up to the point of failure; the error is
// the Result's *Error when the probe failed, and nil on success. A refusal by
// opts.CheckAddr fails before anything is dialled, with an error that wraps
// ErrPolicy.
func Probe(ctx context.Context, host string, port uint16, opts *Options) (*Result, error) {
	start := time.Now()
	ctx, cancel := WithDefaultDeadline(ctx)
	defer cancel()
	s := NewSession(ctx, host, port, opts, NewTranscript(opts.Transcript, start), "")
	s.p.start = start
	if _, err := s.Prepare(false); err != nil {
		return s.p.done(err)
	}
	return s.p.done(s.Run())
}

// WithDefaultDeadline gives ctx a DefaultTimeout deadline when it has none.
func WithDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// prober holds the state of one host's probe.
type prober struct {
	ctx      context.Context
	opts     *Options
	res      *Result
	start    time.Time
	tr       *Transcript
	trHost   string    // the exchanger's name in an MX probe's transcript
	tlsCheck *TLSCheck // the caller's judgement of the TLS session; nil: WebPKI alone
	sni      string    // the caller's SNI (Session.SetServerName); empty: the verification name
	hooked   bool      // the failure came from the caller's TLSCheck

	conn     net.Conn
	r        *bufio.Reader
	tls      bool    // the connection is encrypted
	password string  // read once before connecting
	secrets  secrets // the password and its encodings, scrubbed from what is kept or shown
	mailOpen bool    // a MAIL FROM was accepted and the transaction is open
	ehloExt  *extensionSet

	all   bool         // every address of the host is to be probed (Prepare)
	addrs []netip.Addr // with all: the vetted addresses to probe, after resolve
}

func newProber(ctx context.Context, host string, port uint16, opts *Options, tr *Transcript, trHost string) *prober {
	return &prober{ctx: ctx, opts: opts, res: &Result{Host: host, Port: port}, start: time.Now(), tr: tr, trHost: trHost}
}

// done records the outcome of the probe and returns it as Probe does.
func (p *prober) done(err *Error) (*Result, error) {
	p.res.Duration = time.Since(p.start)
	if p.res.TLS != nil {
		p.res.TLS.VerifyError = cleanErr(p.res.TLS.VerifyError, p.secrets.clean)
	}
	if err != nil {
		err.Err = cleanErr(err.Err, p.secrets.clean)
		p.res.Err = err
		p.note("probe failed: %s", err)
		return p.res, err
	}
	return p.res, nil
}

// prepare does everything before the dial: the password is read, the host
// resolved, every address vetted by the policy and one chosen.
func (p *prober) prepare() *Error {
	if a := p.opts.Auth; a != nil && a.Password != nil {
		pw, err := a.Password()
		if err != nil {
			return &Error{Phase: PhaseAuth, Reason: ReasonConfig, Err: fmt.Errorf("reading the password: %w", err)}
		}
		p.password = pw
		p.secrets.add(pw)
		p.secrets.add(base64.StdEncoding.EncodeToString([]byte(pw)))
	}
	return p.resolve()
}

// run dials the vetted address and talks.
func (p *prober) run() *Error {
	release, err := p.connect()
	if err != nil {
		return err
	}
	defer release()
	defer p.conn.Close()
	// Cancellation (not only the deadline) must unblock reads and writes. The
	// TCP connection is captured: p.conn becomes the TLS connection after
	// STARTTLS, whose deadlines are those of the connection beneath.
	raw := p.conn
	stop := context.AfterFunc(p.ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if p.opts.TLS == TLSImplicit {
		t := time.Now()
		err := p.handshake(PhaseTLS)
		p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseTLS, Duration: time.Since(t)})
		if err != nil {
			return err
		}
	}
	p.r = getReader(p.conn)
	defer putReader(p.r)
	if err := p.dialog(); err != nil {
		p.politeQuit(err)
		return err
	}
	return nil
}

// dialog runs banner to QUIT on the open connection.
func (p *prober) dialog() *Error {
	t := time.Now()
	banner, err := p.readReply(PhaseBanner, t)
	if err != nil {
		return err
	}
	if done, err := p.check(PhaseBanner, banner, 2); done || err != nil {
		return p.finish(err)
	}
	if done, err := p.ehlo(); done || err != nil {
		return p.finish(err)
	}
	if p.opts.TLS == TLSStartTLS {
		if done, err := p.startTLS(); done || err != nil {
			return p.finish(err)
		}
	}
	if p.opts.Auth != nil {
		if done, err := p.auth(); done || err != nil {
			return p.finish(err)
		}
	}
	if p.opts.MailFrom != "" {
		if done, err := p.transaction(); done || err != nil {
			return p.finish(err)
		}
	}
	return p.quit()
}

// finish ends the dialog after an expected reply (err nil): RSET when a
// transaction is open, then QUIT. A failure is passed through. Once the
// expectation is met the verdict is in, and RSET and QUIT are courtesy, as
// after a failure (politeQuit): sent within quitBudget, recorded, and their
// failure noted, never the probe's. A server that refuses and hangs up
// (Exim's drop ACL, a STARTTLS-required server answering 530 and closing)
// has met the expectation.
func (p *prober) finish(err *Error) *Error {
	if err != nil {
		return err
	}
	deadline := time.Now().Add(quitBudget)
	if d, ok := p.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	p.conn.SetDeadline(deadline)
	if p.mailOpen {
		r, err := p.cmd(PhaseRset, "RSET", "")
		if err == nil && r.Class() != 2 {
			err = replyError(PhaseRset, r, 2)
		}
		if err != nil {
			p.note("RSET after the expected reply failed (a courtesy, not a failure): %s", err)
			p.politeQuit(err)
			return nil
		}
		p.mailOpen = false
	}
	r, qerr := p.cmd(PhaseQuit, "QUIT", "")
	if qerr == nil && r.Class() != 2 {
		qerr = replyError(PhaseQuit, r, 2)
	}
	if qerr != nil {
		p.note("QUIT after the expected reply failed (a courtesy, not a failure): %s", qerr)
	}
	return nil
}

func (p *prober) quit() *Error {
	r, err := p.cmd(PhaseQuit, "QUIT", "")
	if err != nil {
		return err
	}
	if r.Class() != 2 {
		return replyError(PhaseQuit, r, 2)
	}
	return nil
}

// politeQuit sends QUIT after a failure, so the server does not count the
// probe as an aborted session, within quitBudget and never past the probe's
// deadline or after its cancellation.
func (p *prober) politeQuit(failure *Error) {
	if failure.Phase == PhaseQuit || p.ctx.Err() != nil {
		return
	}
	deadline := time.Now().Add(quitBudget)
	if d, _ := p.ctx.Deadline(); d.Before(deadline) {
		deadline = d
	}
	switch r := failure.Reason; {
	case r == Reason4xx, r == Reason5xx, r == ReasonUnsupported, r == ReasonExpectation, r == ReasonToken, p.hooked:
		// The dialog is in step (p.hooked: the caller's TLSCheck refused it).
		p.conn.SetDeadline(deadline)
		_, _ = p.cmd(PhaseQuit, "QUIT", "") // best effort; the failure stands
	case r == ReasonProtocol:
		// The stream is out of step: say goodbye without waiting for an answer.
		p.conn.SetWriteDeadline(deadline)
		p.emit(Client, "QUIT")
		_, _ = p.conn.Write([]byte("QUIT\r\n"))
	}
}

// check judges a reply: done is true when the phase carries an expectation
// the reply meets (the dialog stops there); err is set when the reply is of
// the wrong class.
func (p *prober) check(phase Phase, r *Reply, want int) (done bool, err *Error) {
	if exp, ok := p.opts.Expect[phase]; ok {
		if r.Class() == exp {
			p.note("%s: got the expected %dxx reply", phase, exp)
			return true, nil
		}
		return false, &Error{Phase: phase, Reason: ReasonExpectation, Reply: r,
			Err: fmt.Errorf("expected a %dxx reply, got %d", exp, r.Code)}
	}
	if r.Class() != want {
		return false, replyError(phase, r, want)
	}
	return false, nil
}

// cmd sends one command line and reads its reply, recording the phase. shown
// replaces the line in the transcript when it carries a secret.
func (p *prober) cmd(phase Phase, line, shown string) (*Reply, *Error) {
	t := time.Now()
	if strings.ContainsAny(line, "\r\n") {
		return nil, &Error{Phase: phase, Reason: ReasonConfig,
			Err: errors.New("refusing to send a command with a line break (the options did not pass Validate)")}
	}
	if err := p.unsolicited(); err != nil {
		return nil, err
	}
	if shown == "" {
		shown = line
	}
	p.emit(Client, shown)
	if _, err := io.WriteString(p.conn, line+"\r\n"); err != nil {
		p.res.Phases = append(p.res.Phases, PhaseResult{Phase: phase, Duration: time.Since(t)})
		return nil, p.ioError(phase, err)
	}
	return p.readReply(phase, t)
}

// unsolicited fails the probe when the server sent more than the replies
// asked for: bytes already buffered when the client is about to send its
// next command (the probe does not pipeline, so each command's reply is
// complete before the next is sent). Read later as the next command's
// reply, a stale line would put the dialog out of step.
func (p *prober) unsolicited() *Error {
	n := p.r.Buffered()
	if n == 0 {
		return nil
	}
	phase := PhaseBanner
	if len(p.res.Phases) > 0 {
		phase = p.res.Phases[len(p.res.Phases)-1].Phase
	}
	peek, _ := p.r.Peek(min(n, 256))
	shown := p.secrets.scrub(safeBytes(bytes.TrimRight(peek, "\r\n")))
	if len(shown) > 40 {
		shown = cutUTF8(shown, 40) + "..."
	}
	return &Error{Phase: phase, Reason: ReasonProtocol,
		Err: protocolErrorf("the server sent %d bytes nobody asked for after its %s reply: \"%s\"", n, phase, shown)}
}

// readReply reads one reply and records the phase as lasting since t.
func (p *prober) readReply(phase Phase, t time.Time) (*Reply, *Error) {
	how := replyReading{keepLines: maxKeptLines, keepBytes: maxKeptBytes, clean: p.secrets.scrub}
	if p.tr != nil {
		how.onSafeLine = p.serverLine
	}
	p.ehloExt = nil
	if phase == PhaseEHLO {
		ext := &extensionSet{}
		how.onText = func(i int, text string) {
			if i > 0 {
				ext.add(text)
			}
		}
		p.ehloExt = ext
	}
	r, err := readReply(p.r, how)
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: phase, Duration: time.Since(t), Reply: r})
	if err != nil {
		return nil, p.ioError(phase, err)
	}
	return r, nil
}

// serverLine puts a server's line, made safe, in the transcript.
func (p *prober) serverLine(line string) { p.emit(Server, line) }

// ioError classifies a read or write failure.
func (p *prober) ioError(phase Phase, err error) *Error {
	reason := ReasonClosed
	switch {
	case errors.Is(err, ErrProtocol):
		reason = ReasonProtocol
	case p.ctx.Err() != nil, isTimeout(err):
		reason = ReasonTimeout
		if p.ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, p.ctx.Err())
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		if errors.Is(err, io.EOF) {
			err = errors.New("connection closed by the server")
		}
	}
	return &Error{Phase: phase, Reason: reason, Err: err}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// emit sends a line to the transcript, secrets scrubbed (the transcript
// makes it safe).
func (p *prober) emit(dir Direction, text string) {
	if p.tr != nil {
		p.tr.Emit(p.trHost, dir, p.secrets.scrub(text))
	}
}

func (p *prober) note(format string, args ...any) {
	if p.tr != nil {
		p.emit(Note, fmt.Sprintf(format, args...))
	}
}
