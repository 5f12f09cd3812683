// Package delivery checks that a message reached a mailbox: it logs in to
// an IMAP server (plain, STARTTLS or IMAPS), waits for the message with the
// given Message-ID (IDLE where offered, else by searching), deletes it, and
// then cleans up, best effort, the messages of earlier probes that arrived
// too late and that no probe waits for any more. The
// transcript it writes has the password redacted in every form it was sent
// and server text made safe.
//
// It never sends mail, knows nothing of SMTP, and never decides what a
// failure means for a probe beyond its Reason.
package delivery

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Reason says why a check failed; the values are the exporter's "reason"
// label values.
type Reason string

// The reasons a check fails for.
const (
	ReasonConfig      Reason = "config"      // the check could not be prepared (no Message-ID, an unreadable password)
	ReasonConnect     Reason = "connect"     // the TCP connection could not be made
	ReasonTimeout     Reason = "timeout"     // the wait (or the probe's deadline) ran out
	ReasonTLS         Reason = "tls"         // the TLS handshake or the certificate check failed
	ReasonUnsupported Reason = "unsupported" // the server refused STARTTLS
	ReasonAuth        Reason = "auth"        // the server refused the login
	ReasonClosed      Reason = "closed"      // the server closed the connection
	ReasonProtocol    Reason = "protocol"    // a NO, BAD or malformed answer
)

// Error is a failed check: why, and the underlying error, whose text holds
// no secret and no raw server text.
type Error struct {
	Reason Reason
	Err    error
}

// Error formats the failure as "delivery: auth: logging in as ...", the
// form of the exporter's other failures (phase: reason: what happened).
func (e *Error) Error() string { return "delivery: " + string(e.Reason) + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ErrProtocol is wrapped by the error of a server that breaks the protocol
// (an over-long line).
var ErrProtocol = errors.New("imap protocol error")

// TLSMode says whether and how the check uses TLS.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain IMAP
	TLSStartTLS TLSMode = "starttls" // STARTTLS after the greeting
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (IMAPS, port 993)
)

// Direction tells who wrote a transcript line.
type Direction byte

// Transcript line directions.
const (
	Client Direction = 'C' // a line the check sent
	Server Direction = 'S' // a line the server sent
	Note   Direction = '*' // what the check did or found
)

// DefaultTimeout bounds a check whose context carries no deadline.
const DefaultTimeout = 60 * time.Second

// DefaultPollInterval is how often a mailbox without IDLE is searched.
const DefaultPollInterval = time.Second

// staleScanLimit bounds the messages of earlier probes looked at (and
// deleted) by one check.
const staleScanLimit = 100

// Check says where and how to look for the probe's message. It is
// read-only during a check and may be shared by concurrent checks.
type Check struct {
	// Addr is the IMAP server, host:port.
	Addr string
	// TLS is none (the default), starttls or implicit (IMAPS, port 993).
	TLS TLSMode
	// TLSConfig is used for the handshake; nil means Go's defaults. Its
	// ServerName defaults to Addr's host.
	TLSConfig *tls.Config
	// Username and Password log in. Password is called once per check, so a
	// password file can be read (and rotated) at check time.
	Username string
	Password func() (string, error)
	// Mailbox is selected and searched; empty means INBOX.
	Mailbox string
	// Timeout bounds the wait, counted from the message's acceptance; the
	// context's deadline bounds it too, whichever comes first. Zero leaves
	// only the context's deadline (DefaultTimeout when it has none).
	Timeout time.Duration
	// PollInterval is how often a server without IDLE is searched; zero
	// means DefaultPollInterval.
	PollInterval time.Duration
}

// Validate checks the delivery check's settings before anything is dialled.
func (dc *Check) Validate() error {
	if _, _, err := net.SplitHostPort(dc.Addr); err != nil {
		return fmt.Errorf("imap address %q: %w", dc.Addr, err)
	}
	switch dc.TLS {
	case "", TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("unknown tls mode %q (want none, starttls or implicit)", dc.TLS)
	}
	if dc.Username == "" || dc.Password == nil {
		return errors.New("the delivery check needs a username and a password")
	}
	if dc.Timeout < 0 || dc.PollInterval < 0 {
		return errors.New("negative timeout or poll interval")
	}
	return nil
}

// Request names the message a check waits for.
type Request struct {
	// MessageID is the Message-ID header of the probe's message, with its
	// angle brackets (Result.MessageID).
	MessageID string
	// AcceptedAt is when the reply to the final "." came; the delivery time
	// and the timeout count from it. Zero means when the check starts.
	AcceptedAt time.Time
	// Transcript, when not nil, receives every IMAP line sent and received
	// (made safe with textsafe, secrets redacted), and notes of what the
	// check did. Calls are serialised.
	Transcript func(dir Direction, text string)
}

// Result is what a delivery check saw.
type Result struct {
	// Delivery is the time from the message's acceptance until it was found
	// in the mailbox; zero if it was not found.
	Delivery time.Duration
	// SeenAt is when the message was found; zero if it was not.
	SeenAt time.Time
	// Deleted is true once the message was deleted and expunged.
	Deleted bool
	// StaleDeleted counts the messages of earlier probes, arrived after
	// their probes gave up, that this check deleted.
	StaleDeleted int
	// Idle is true when the wait used IMAP IDLE, false when it polled.
	Idle bool
	// Duration is the whole check, from its start to the logout.
	Duration time.Duration
}

// Wait logs in to the IMAP mailbox dc names and waits until the
// message req names is there: with IDLE where the server offers it, else by
// searching every PollInterval. It then deletes the message and, best
// effort with the time left, the messages of earlier probes that arrived
// too late to be counted: those whose own deadline (the
// X-Smtp-Exporter-Deadline header smtp writes) has passed, so that a
// concurrent probe's message is never touched, however long its wait; a
// message without that header, when it was sent longer ago than the wait
// this check allows. The wait ends at AcceptedAt+dc.Timeout or ctx's deadline,
// whichever is first; the connection is closed then, whatever the server
// does. It always returns a result; the error is nil on success and has
// its Reason otherwise. The password appears in no transcript line
// and no error.
func Wait(ctx context.Context, dc *Check, req Request) (*Result, *Error) {
	start := time.Now()
	res := &Result{}
	if req.AcceptedAt.IsZero() {
		req.AcceptedAt = start
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if dc.Timeout > 0 {
		var cancelWait context.CancelFunc
		ctx, cancelWait = context.WithDeadline(ctx, req.AcceptedAt.Add(dc.Timeout))
		defer cancelWait()
	}
	d := &deliverer{ctx: ctx, dc: dc, req: req, res: res, log: newIMAPLog(req.Transcript)}
	err := d.run()
	res.Duration = time.Since(start)
	if err != nil {
		d.log.note("delivery check failed: %s", err)
	}
	return res, err
}

// deliverer holds the state of one delivery check.
type deliverer struct {
	ctx context.Context
	dc  *Check
	req Request
	res *Result
	log *imapLog

	client  *imapclient.Client
	newMail chan struct{} // a token when the server reported EXISTS
}

func (d *deliverer) fail(reason Reason, err error) *Error {
	return &Error{Reason: reason, Err: d.log.scrubErr(err)}
}

func (d *deliverer) run() *Error {
	if err := d.dc.Validate(); err != nil {
		return d.fail(ReasonConfig, fmt.Errorf("invalid delivery check: %w", err))
	}
	if d.req.MessageID == "" {
		return d.fail(ReasonConfig, errors.New("no Message-ID to look for: the probe sent no message"))
	}
	password, err := d.dc.Password()
	if err != nil {
		return d.fail(ReasonConfig, fmt.Errorf("reading the imap password: %w", err))
	}
	// Every encoding of the password the check may send: as it is (LOGIN,
	// IMAP-quoted by addSecret), and base64 in AUTHENTICATE PLAIN's
	// response, alone and as the whole PLAIN message.
	d.log.addSecret(password)
	d.log.addSecret(base64.StdEncoding.EncodeToString([]byte(password)))
	d.log.addSecret(base64.StdEncoding.EncodeToString([]byte("\x00" + d.dc.Username + "\x00" + password)))

	if err := d.connect(); err != nil {
		return err
	}
	// Close waits for the client's reader goroutine; the connection's own
	// error, after a LOGOUT or a failure, tells nothing more.
	defer func() { _ = d.client.Close() }()

	if err := d.login(password); err != nil {
		return err
	}
	mailbox := d.dc.Mailbox
	if mailbox == "" {
		mailbox = "INBOX"
	}
	if _, err := d.client.Select(mailbox, nil).Wait(); err != nil {
		return d.imapError(fmt.Errorf("selecting %q: %w", mailbox, err))
	}
	// This probe's message first: cleaning up after earlier probes can
	// take long (a slow EXPUNGE), and must not eat into the wait or the
	// delivery time.
	uids, werr := d.wait()
	if werr != nil {
		return werr
	}
	if err := d.remove(uids); err != nil {
		return err
	}
	d.res.Deleted = true
	d.log.note("message deleted")
	d.cleanUp()
	// A polite LOGOUT; the check already succeeded, whatever its reply.
	_ = d.client.Logout().Wait()
	return nil
}

// cleanUp deletes the messages of earlier probes that arrived after their
// probes gave up, best effort, within what is left of the check's time: a
// failure is noted, never the check's (the next check tries again).
func (d *deliverer) cleanUp() {
	stale, err := d.staleMessages()
	if err == nil && len(stale) > 0 {
		if err = d.remove(stale); err == nil {
			d.res.StaleDeleted = len(stale)
			d.log.note("deleted %d message(s) of earlier probes that arrived after their probes gave up", len(stale))
		}
	}
	switch {
	case err == nil:
	case d.expired():
		d.log.note("the check's time ran out while cleaning up the messages of earlier probes (not a failure; the next check goes on)")
	default:
		d.log.note("cleaning up the messages of earlier probes failed (not a failure of the check): %s", err)
	}
}

// connect dials the server and sets up TLS and the IMAP client.
func (d *deliverer) connect() *Error {
	host, _, _ := net.SplitHostPort(d.dc.Addr)
	deadline, _ := d.ctx.Deadline()
	d.log.note("connecting to %s (tls: %s)", d.dc.Addr, tlsModeName(d.dc.TLS))
	var dialer net.Dialer
	raw, err := dialer.DialContext(d.ctx, "tcp", d.dc.Addr)
	if err != nil {
		if d.expired() {
			return d.fail(ReasonTimeout, fmt.Errorf("connecting to %s: %w", d.dc.Addr, err))
		}
		return d.fail(ReasonConnect, fmt.Errorf("connecting to %s: %w", d.dc.Addr, err))
	}
	// Closing the socket when the context ends unblocks every read and
	// write of the client, whatever deadline it set.
	context.AfterFunc(d.ctx, func() { raw.Close() })
	bounded := &boundedConn{Conn: raw, deadline: deadline}
	_ = bounded.SetDeadline(deadline) // fails only on a closed socket, which the first read reports

	var conn net.Conn
	switch d.dc.TLS {
	case TLSImplicit:
		tc, err := d.handshake(bounded, host)
		if err != nil {
			raw.Close()
			return err
		}
		conn = &imapConn{Conn: tc, log: d.log}
	case TLSStartTLS:
		if err := startTLS(&imapConn{Conn: bounded, log: d.log}); err != nil {
			raw.Close()
			switch {
			case errors.Is(err, errSTARTTLSRefused):
				return d.fail(ReasonUnsupported, err)
			default:
				return d.ioError(fmt.Errorf("starttls: %w", err))
			}
		}
		tc, err := d.handshake(bounded, host)
		if err != nil {
			raw.Close()
			return err
		}
		conn = newGreetedConn(&imapConn{Conn: tc, log: d.log})
	default:
		conn = &imapConn{Conn: bounded, log: d.log}
	}

	d.newMail = make(chan struct{}, 1)
	d.client = imapclient.New(conn, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(m *imapclient.UnilateralDataMailbox) {
				if m.NumMessages != nil {
					select {
					case d.newMail <- struct{}{}:
					default:
					}
				}
			},
		},
	})
	if err := d.client.WaitGreeting(); err != nil {
		_ = d.client.Close() // the greeting's error says what went wrong
		return d.ioError(fmt.Errorf("waiting for the greeting: %w", err))
	}
	return nil
}

// handshake runs a TLS client handshake on conn.
func (d *deliverer) handshake(conn net.Conn, host string) (*tls.Conn, *Error) {
	cfg := imapTLSConfig(d.dc.TLSConfig, host)
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(d.ctx); err != nil {
		if d.expired() || isTimeout(err) {
			return nil, d.fail(ReasonTimeout, fmt.Errorf("tls handshake: %w", err))
		}
		return nil, d.fail(ReasonTLS, fmt.Errorf("tls handshake: %w", err))
	}
	cs := tc.ConnectionState()
	d.log.note("TLS handshake done: %s, %s, certificate for %s verified", tls.VersionName(cs.Version),
		tls.CipherSuiteName(cs.CipherSuite), cfg.ServerName)
	return tc, nil
}

// login authenticates with LOGIN, or AUTHENTICATE PLAIN where the server
// disables LOGIN.
func (d *deliverer) login(password string) *Error {
	if d.client.State() == imap.ConnStateAuthenticated { // PREAUTH
		return nil
	}
	caps := d.client.Caps()
	var err error
	if caps.Has(imap.CapLoginDisabled) && caps.Has(imap.AuthCap(sasl.Plain)) {
		err = d.client.Authenticate(sasl.NewPlainClient("", d.dc.Username, password))
	} else {
		err = d.client.Login(d.dc.Username, password).Wait()
	}
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) && !d.expired() {
		return d.fail(ReasonAuth, fmt.Errorf("logging in as %s: %w", d.dc.Username, err))
	}
	return d.ioError(fmt.Errorf("logging in: %w", err))
}

// imapError classifies the failure of a command: a NO or BAD is a protocol
// failure, the rest is the connection's.
func (d *deliverer) imapError(err error) *Error {
	var ie *imap.Error
	if errors.As(err, &ie) && !d.expired() {
		return d.fail(ReasonProtocol, err)
	}
	return d.ioError(err)
}

// ioError classifies a read or write failure, as the SMTP dialog does.
func (d *deliverer) ioError(err error) *Error {
	switch {
	case d.expired(), isTimeout(err):
		return d.fail(ReasonTimeout, err)
	case errors.Is(err, ErrProtocol):
		return d.fail(ReasonProtocol, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return d.fail(ReasonClosed, err)
	}
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBye {
		return d.fail(ReasonClosed, err)
	}
	return d.fail(ReasonProtocol, err)
}

// expired reports whether the check's time is up. The deadline set on the
// socket may fire a moment before the context's timer does.
func (d *deliverer) expired() bool {
	if d.ctx.Err() != nil {
		return true
	}
	deadline, _ := d.ctx.Deadline()
	return !time.Now().Before(deadline)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func tlsModeName(m TLSMode) TLSMode {
	if m == "" {
		return TLSNone
	}
	return m
}
