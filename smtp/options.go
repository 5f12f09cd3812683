package smtp

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// TLSMode says whether and how the probe uses TLS.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none"     // plain SMTP
	TLSStartTLS TLSMode = "starttls" // STARTTLS after EHLO; a server that does not offer it fails "unsupported"
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (SMTPS, port 465)
)

// DefaultTimeout bounds a probe whose context carries no deadline.
const DefaultTimeout = 10 * time.Second

// quitBudget is the most time the polite QUIT after a failure may take,
// within the probe's deadline.
const quitBudget = time.Second

// Auth holds AUTH credentials: a Password for PLAIN, LOGIN and CRAM-MD5, or
// a Token for XOAUTH2 and OAUTHBEARER, never both.
type Auth struct {
	Username string
	// Password is called once per probe, before the connection is made, so
	// a password file can be read (and rotated) at probe time.
	Password func() (string, error)
	// Token returns the OAuth 2.0 bearer token for XOAUTH2 and OAUTHBEARER
	// (RFC 7628), and a note for the transcript saying where it came from.
	// It is called with the probe's context once per dialog, after EHLO
	// (and STARTTLS) when the mechanism is offered, right before AUTH. An
	// error fails the probe in phase auth with ReasonToken, and AUTH is
	// not sent. Token must be safe for concurrent use.
	Token func(ctx context.Context) (token, note string, err error)
	// Mechanism is PLAIN, LOGIN or CRAM-MD5 (with Password), or XOAUTH2 or
	// OAUTHBEARER (with Token, required then). Empty, with Password, picks
	// the best one offered: inside TLS PLAIN, then LOGIN, then CRAM-MD5;
	// without TLS (AllowPlaintext) CRAM-MD5 first, as it does not send the
	// password.
	Mechanism string
	// AllowPlaintext permits credentials over a connection without TLS.
	AllowPlaintext bool
}

// Options says what one probe does. It is read-only during a probe and may be
// shared by concurrent probes.
//
// Probe and ProbeMX do not check Options: they must have passed Validate
// once (the exporter does it when it loads its configuration). A value that
// would break an SMTP command line is still refused when it is about to be
// sent, but other invalid values give undefined (though memory-safe) results.
type Options struct {
	// HeloName is sent with EHLO and HELO: an RFC 5321 domain or address
	// literal (see CheckHeloName).
	HeloName string
	// TLS is none (the default), starttls or implicit.
	TLS TLSMode
	// TLSConfig is used for the handshake; nil means Go's defaults. Its
	// ServerName defaults to the host probed.
	TLSConfig *tls.Config
	// Auth, when not nil, authenticates after EHLO (and STARTTLS).
	Auth *Auth
	// MailFrom, when not empty, is sent as MAIL FROM; "<>" is the null sender.
	MailFrom string
	// RcptTo is sent as RCPT TO, one command per address, after MAIL FROM.
	RcptTo []string
	// SendData sends DATA and a small test message after RCPT TO.
	SendData bool
	// MarkDeadline writes the probe's deadline (unix seconds, rounded up)
	// into the test message as X-Smtp-Exporter-Deadline: a delivery check
	// waiting for the message gives up by then, and another check's
	// cleanup of a shared mailbox leaves it alone until that has passed.
	MarkDeadline bool
	// IPProtocol is "ip4" (the default) or "ip6"; with IPProtocolFallback the
	// other is used when the host has no address of the preferred one.
	IPProtocol         string
	IPProtocolFallback bool
	// Resolver is the DNS server ("host:port", e.g. "127.0.0.1:53") that
	// resolves host names and MX records; empty means the system's resolver.
	// Resolution errors name the resolver that was asked.
	Resolver string
	// Expect maps a phase to the reply class (2 to 5) that means success
	// there. The dialog stops after that phase (RSET if a transaction is open,
	// then QUIT), and a reply of another class fails with ReasonExpectation.
	Expect map[Phase]int
	// CheckAddr, when not nil, vets every address a host resolves to (for
	// ProbeMX: every address of every exchanger) before anything is
	// dialled. An error refuses the probe with ReasonPolicy; the *Error then
	// wraps both ErrPolicy and the hook's error. The probe dials the vetted
	// address itself, so the name cannot be resolved again to another one.
	CheckAddr func(host string, addr netip.Addr) error
	// Admit, when not nil, is called right before each TCP connection is
	// dialled (after resolution and CheckAddr), so every connection, each
	// exchanger of an MX probe included, takes a slot of the caller's
	// capacity. release is called once that connection is closed. An error
	// fails that host in phase connect with ReasonTimeout when ctx is done,
	// else with ReasonOverload.
	Admit func(ctx context.Context) (release func(), err error)
	// Transcript, when not nil, receives every line sent and received, and
	// notes on what the probe did. Calls are serialised by the probe (one
	// lock per Probe or ProbeMX call, shared by the concurrent exchanger
	// probes of ProbeMX), so the function needs no locking of its own if it
	// serves one call. Every line is made safe (SafeText) and secrets are
	// replaced by <redacted>. The text of one call is capped at 32 KiB:
	// past it, one note says the transcript was truncated and server lines
	// are dropped, while the probe's own lines still come.
	Transcript func(TranscriptLine)
}

// MaxAddresses bounds the addresses Session.Prepare returns for a host
// whose every address is to be probed.
const MaxAddresses = 8

// systemResolver names the system's resolver in errors.
const systemResolver = "the system resolver"

// resolverName names the resolver these options ask, for errors.
func (o *Options) resolverName() string {
	if o.Resolver == "" {
		return systemResolver
	}
	return o.Resolver
}

// resolver returns the resolver these options ask: Resolver, or the
// system's when it is empty.
func (o *Options) resolver() *net.Resolver {
	addr := o.Resolver
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}
