package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Probe runs one SMTP dialog with host:port as opts describe, within ctx's
// deadline (DefaultTimeout when it has none). It always returns a Result,
// filled up to the point of failure; the error is a *Error when the probe
// failed, and nil on success. Invalid options fail before anything is dialled.
func Probe(ctx context.Context, host string, port uint16, opts *Options) (*Result, error) {
	res := &Result{Host: host, Port: port}
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	p := &prober{ctx: ctx, opts: opts, res: res, start: time.Now()}
	err := p.run()
	res.Duration = time.Since(p.start)
	if err != nil {
		res.Err = err
		p.note("probe failed: %s", err)
		return res, err
	}
	return res, nil
}

// withDefaultDeadline gives ctx a DefaultTimeout deadline when it has none.
func withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// prober holds the state of one probe.
type prober struct {
	ctx   context.Context
	opts  *Options
	res   *Result
	start time.Time

	conn     net.Conn
	r        *bufio.Reader
	tls      bool   // the connection is encrypted
	password string // read once before connecting
	mailOpen bool   // a MAIL FROM was accepted and the transaction is open
}

func (p *prober) run() *Error {
	if err := p.opts.Validate(); err != nil {
		return &Error{Phase: PhaseResolve, Reason: ReasonConfig, Err: fmt.Errorf("invalid probe options: %w", err)}
	}
	if a := p.opts.Auth; a != nil {
		pw, err := a.Password()
		if err != nil {
			return &Error{Phase: PhaseAuth, Reason: ReasonConfig, Err: fmt.Errorf("reading the password: %w", err)}
		}
		p.password = pw
	}
	addr, err := p.resolve()
	if err != nil {
		return err
	}
	if err := p.connect(addr); err != nil {
		return err
	}
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
	p.r = NewReader(p.conn)
	if err := p.dialog(); err != nil {
		p.politeQuit(err)
		return err
	}
	return nil
}

func (p *prober) resolve() (netip.Addr, *Error) {
	t := time.Now()
	addrs, literal, err := p.lookup()
	if !literal {
		p.res.DNSDuration = time.Since(t)
	}
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseResolve, Duration: p.res.DNSDuration})
	if err != nil {
		return netip.Addr{}, err
	}
	if check := p.opts.CheckAddr; check != nil {
		for _, a := range addrs {
			if err := check(p.res.Host, a); err != nil {
				return netip.Addr{}, &Error{Phase: PhaseConnect, Reason: ReasonPolicy, Err: err}
			}
		}
	}
	addr, ok := pickAddr(addrs, p.opts.IPProtocol, p.opts.IPProtocolFallback)
	if !ok {
		return netip.Addr{}, &Error{Phase: PhaseResolve, Reason: ReasonResolve,
			Err: fmt.Errorf("%s has no %s address", p.res.Host, ipName(p.opts.IPProtocol))}
	}
	p.res.IPProtocol = 4
	if addr.Is6() {
		p.res.IPProtocol = 6
	}
	p.res.Addr = netip.AddrPortFrom(addr, p.res.Port)
	if !literal {
		p.note("resolved %s to %s in %s", p.res.Host, addr, p.res.DNSDuration.Round(time.Microsecond))
	}
	return addr, nil
}

// lookup returns the host's addresses, unmapped; an IP literal is its own
// (literal is then true).
func (p *prober) lookup() (addrs []netip.Addr, literal bool, _ *Error) {
	if a, err := netip.ParseAddr(p.res.Host); err == nil {
		if a.Zone() != "" {
			return nil, true, &Error{Phase: PhaseResolve, Reason: ReasonResolve, Err: errors.New("addresses with a zone are not probed")}
		}
		return []netip.Addr{a.Unmap()}, true, nil
	}
	network := "ip"
	if !p.opts.IPProtocolFallback {
		network = ipName(p.opts.IPProtocol)
	}
	r := p.opts.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(p.ctx, network, p.res.Host)
	if err != nil {
		reason := ReasonResolve
		if p.ctx.Err() != nil {
			reason = ReasonTimeout
		}
		return nil, false, &Error{Phase: PhaseResolve, Reason: reason, Err: fmt.Errorf("resolving %s: %w", p.res.Host, err)}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, false, nil
}

func ipName(proto string) string {
	if proto == "ip6" {
		return "ip6"
	}
	return "ip4"
}

// pickAddr chooses the first address of the preferred family, or of the
// other with fallback. An IP literal is used as it is.
func pickAddr(addrs []netip.Addr, proto string, fallback bool) (netip.Addr, bool) {
	want6 := proto == "ip6"
	for _, a := range addrs {
		if a.Is6() == want6 {
			return a, true
		}
	}
	if (fallback || len(addrs) == 1) && len(addrs) > 0 {
		return addrs[0], true
	}
	return netip.Addr{}, false
}

func (p *prober) connect(addr netip.Addr) *Error {
	t := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(p.ctx, "tcp", netip.AddrPortFrom(addr, p.res.Port).String())
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseConnect, Duration: time.Since(t)})
	if err != nil {
		reason := ReasonConnect
		if p.ctx.Err() != nil || isTimeout(err) {
			reason = ReasonTimeout
		}
		return &Error{Phase: PhaseConnect, Reason: reason, Err: err}
	}
	deadline, _ := p.ctx.Deadline()
	conn.SetDeadline(deadline)
	p.conn = conn
	p.note("connected to %s from %s", conn.RemoteAddr(), conn.LocalAddr())
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
// transaction is open, then QUIT. A failure is passed through.
func (p *prober) finish(err *Error) *Error {
	if err != nil {
		return err
	}
	if p.mailOpen {
		r, err := p.cmd(PhaseRset, "RSET", "")
		if err != nil {
			return err
		}
		if r.Class() != 2 {
			return replyError(PhaseRset, r, 2)
		}
		p.mailOpen = false
	}
	return p.quit()
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
// probe as an aborted session, within QuitBudget and never past the probe's
// deadline or after its cancellation.
func (p *prober) politeQuit(failure *Error) {
	if failure.Phase == PhaseQuit || p.ctx.Err() != nil {
		return
	}
	deadline := time.Now().Add(QuitBudget)
	if d, _ := p.ctx.Deadline(); d.Before(deadline) {
		deadline = d
	}
	switch failure.Reason {
	case Reason4xx, Reason5xx, ReasonUnsupported, ReasonExpectation:
		p.conn.SetDeadline(deadline)
		_, _ = p.cmd(PhaseQuit, "QUIT", "") // best effort; the failure stands
	case ReasonProtocol:
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

// readReply reads one reply and records the phase as lasting since t.
func (p *prober) readReply(phase Phase, t time.Time) (*Reply, *Error) {
	r, err := ReadReply(p.r, p.serverLine)
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: phase, Duration: time.Since(t), Reply: r})
	if err != nil {
		return nil, p.ioError(phase, err)
	}
	return r, nil
}

func (p *prober) serverLine(line []byte) {
	if p.opts.Transcript != nil {
		p.emit(Server, cleanText(line))
	}
}

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

func (p *prober) emit(dir Direction, text string) {
	if p.opts.Transcript != nil {
		p.opts.Transcript(TranscriptLine{At: time.Since(p.start), Dir: dir, Text: text})
	}
}

func (p *prober) note(format string, args ...any) {
	if p.opts.Transcript != nil {
		p.emit(Note, fmt.Sprintf(format, args...))
	}
}
