package smtp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
)

// This file is the step-by-step form of Probe, for callers that act
// between the steps: a prober of every exchanger and address of a domain,
// or one that looks up TLSA records once the host is resolved and judges
// the certificate with them.

// Session is the probe of one host in steps: Prepare (the password read,
// the host resolved, every address vetted), then Run on the chosen address,
// or ForAddr and Run for each address of a host probed on all of them, and
// Done. A Session is used by one goroutine at a time; the Transcript it
// writes to may be shared.
type Session struct {
	p *prober
}

// TLSCheck is the caller's judgement of a dialog's TLS, beyond WebPKI: DANE,
// for one. Its functions run on the Session's goroutine.
type TLSCheck struct {
	// Decides makes Verify the judge of the certificate: WebPKI's verdict is
	// still recorded (TLSState.Verified) but does not fail the handshake.
	Decides bool
	// Verify, when not nil, is called after a handshake that completed
	// (phase tls or starttls), with the state recorded; a non-nil *Error
	// fails the dialog there, and the polite QUIT goes over TLS.
	Verify func(phase Phase, state *TLSState) *Error
	// NoSTARTTLS, when not nil, is called when the module asks for STARTTLS
	// and the server does not offer it; a non-nil *Error replaces the
	// ReasonUnsupported failure.
	NoSTARTTLS func() *Error
}

// NewSession starts the probe of host:port with opts (which must have
// passed Validate) within ctx's deadline: the caller gives ctx one
// (WithDefaultDeadline). Its lines go to tr, each with tag as its
// TranscriptLine.Host (empty for a single-host probe).
func NewSession(ctx context.Context, host string, port uint16, opts *Options, tr *Transcript, tag string) *Session {
	return &Session{p: newProber(ctx, host, port, opts, tr, tag)}
}

// Prepare reads the password and resolves the host; every address it
// resolves to passes Options.CheckAddr before anything is dialled (a
// refusal is an *Error with ReasonPolicy wrapping ErrPolicy). Without all,
// one address is chosen by Options.IPProtocol and returned; with all, every
// distinct address (IPv4 first, each family in resolution order, at most
// MaxAddresses) is returned, the first chosen for Run. The resolve phase is
// recorded in the Result.
func (s *Session) Prepare(all bool) ([]netip.Addr, *Error) {
	s.p.all = all
	if err := s.p.prepare(); err != nil {
		return nil, err
	}
	if all {
		return s.p.addrs, nil
	}
	return []netip.Addr{s.p.res.Addr.Addr()}, nil
}

// IsLiteral reports whether the host is an IP address (no name was
// resolved).
func (s *Session) IsLiteral() bool {
	_, err := netip.ParseAddr(s.p.res.Host)
	return err == nil
}

// ForAddr returns a Session for address a of a prepared Session, with its
// own Result (the resolve phase copied) and tag; the password is not read
// again.
func (s *Session) ForAddr(a netip.Addr, tag string) *Session {
	p := s.p
	res := *p.res
	res.Phases = slices.Clone(p.res.Phases)
	c := &prober{ctx: p.ctx, opts: p.opts, res: &res, start: p.start, tr: p.tr, trHost: tag,
		password: p.password, tlsCheck: p.tlsCheck, all: true, addrs: []netip.Addr{a},
		// Each dialog adds the secrets it sends (an AUTH blob, a token):
		// its own list, not an alias of a shared backing array.
		secrets: secrets{list: slices.Clone(p.secrets.list)}}
	c.setAddr(a)
	c.sni = p.sni
	return &Session{p: c}
}

// SetTLSCheck sets the caller's judgement of the TLS session for Run.
func (s *Session) SetTLSCheck(c *TLSCheck) { s.p.tlsCheck = c }

// SetServerName sets the name Run sends as SNI (the TLS server_name
// extension) in place of Options.TLSConfig.ServerName or the host: a DANE
// client sends the TLSA base domain (RFC 7672 8.1), and a server that picks
// its certificate by SNI must be seen as senders see it. The WebPKI check
// recorded in TLSState (which MTA-STS reads, for the MX host name) is still
// made for the usual name. Empty restores the default.
func (s *Session) SetServerName(name string) { s.p.sni = name }

// Run dials the chosen address and runs the dialog, banner to QUIT (the
// polite QUIT after a failure included).
func (s *Session) Run() *Error { return s.p.run() }

// Result is the Result as it stands.
func (s *Session) Result() *Result { return s.p.res }

// Done records err as the outcome (nil: success), with the duration since
// the Session started, and returns the Result.
func (s *Session) Done(err *Error) *Result {
	res, _ := s.p.done(err)
	return res
}

// Notef writes a note of this host to the transcript.
func (s *Session) Notef(format string, args ...any) { s.p.note(format, args...) }

// joinAddrs formats addresses for a transcript note: "192.0.2.1, 2001:db8::1".
func joinAddrs(addrs []netip.Addr) string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return strings.Join(out, ", ")
}
