package smtp

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Result is everything one probe saw, filled up to the point of failure.
type Result struct {
	// Host and Port are what was probed.
	Host string
	Port uint16
	// Addr is the address dialled (zero if the probe did not get that far).
	Addr netip.AddrPort
	// IPProtocol is 4 or 6 once an address was chosen, else 0.
	IPProtocol int
	// DNSDuration is the time name resolution took (zero for an IP literal).
	DNSDuration time.Duration
	// Phases holds every step reached, in order. A phase with several
	// commands (RCPT per recipient, AUTH LOGIN's exchanges, EHLO before and
	// after STARTTLS, HELO after a refused EHLO) appears once per reply.
	Phases []PhaseResult
	// Extensions maps each EHLO keyword (upper case) to its parameters: the
	// list from the last EHLO, so the post-STARTTLS one when TLS was started.
	Extensions map[string]string
	// TLS describes the handshake, when one was attempted and got far enough
	// to see the server's certificates.
	TLS *TLSState
	// MessageID is the Message-ID of the test message, when one was sent.
	MessageID string
	// AcceptedAt is when the reply to the message's final "." came, when it
	// was a 2xx: where a delivery check's wait starts.
	AcceptedAt time.Time
	// Duration is the whole probe.
	Duration time.Duration
	// Err is the failure, nil on success.
	Err *Error
}

// PhaseResult is one step of the dialog: its duration and the reply it got.
type PhaseResult struct {
	Phase    Phase
	Duration time.Duration
	// Reply is nil for steps without one (resolve, connect, tls) and for a
	// step that failed before its reply came.
	Reply *Reply
}

// TLSState describes a TLS handshake.
type TLSState struct {
	// Version and CipherSuite are crypto/tls's constants.
	Version     uint16
	CipherSuite uint16
	// ServerName is the name the certificate was checked against.
	ServerName string
	// PeerCertificates is the chain the server sent, leaf first; it is
	// reported even when it failed verification.
	PeerCertificates []*x509.Certificate
	// Verified is true when the chain verified; VerifyError says why not
	// (nil when verification was skipped by insecure_skip_verify).
	Verified    bool
	VerifyError error
	// VerifiedChains are the chains WebPKI verification built, each from
	// the server's certificate to a root; empty when it failed or was
	// skipped.
	VerifiedChains [][]*x509.Certificate
	// HandshakeComplete is false when the handshake failed.
	HandshakeComplete bool
}

// VersionName is the TLS version as "TLS 1.3".
func (s *TLSState) VersionName() string { return tls.VersionName(s.Version) }

// CipherSuiteName is the negotiated cipher suite's name.
func (s *TLSState) CipherSuiteName() string { return tls.CipherSuiteName(s.CipherSuite) }

// EarliestExpiry is the earliest NotAfter in the server's chain, or the zero
// time when no certificate was seen.
func (s *TLSState) EarliestExpiry() time.Time {
	var t time.Time
	for _, c := range s.PeerCertificates {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// LastChainExpiry is, as blackbox_exporter computes it, the latest of the
// verified chains' earliest expiries: when the server's certificate stops
// validating through the chain that lasts longest. Zero without a verified
// chain.
func (s *TLSState) LastChainExpiry() time.Time {
	var last time.Time
	for _, chain := range s.VerifiedChains {
		var earliest time.Time
		for _, c := range chain {
			if earliest.IsZero() || c.NotAfter.Before(earliest) {
				earliest = c.NotAfter
			}
		}
		if earliest.After(last) {
			last = earliest
		}
	}
	return last
}

// Success reports whether the probe succeeded.
func (r *Result) Success() bool { return r.Err == nil }

// DecidingReply is the reply that decided the probe: on failure the failing
// reply (nil if none came), on success the 2xx reply to QUIT; or, when an
// expectation was met and the courtesy RSET or QUIT after it got no 2xx
// (the server hung up), the reply that met it: the last before them.
func (r *Result) DecidingReply() *Reply {
	if r.Err != nil {
		return r.Err.Reply
	}
	for i := len(r.Phases) - 1; i >= 0; i-- {
		if p := r.Phases[i]; p.Phase == PhaseQuit && p.Reply != nil && p.Reply.Class() == 2 {
			return p.Reply
		}
	}
	for i := len(r.Phases) - 1; i >= 0; i-- {
		if p := r.Phases[i]; p.Phase != PhaseQuit && p.Phase != PhaseRset && p.Reply != nil {
			return p.Reply
		}
	}
	return nil
}

// MessageSizeLimit is the SIZE the server advertised in EHLO; ok is false
// when it advertised none, no number, or "SIZE 0", which RFC 1870 defines as
// "no fixed maximum message size".
func (r *Result) MessageSizeLimit() (size int64, ok bool) {
	v, found := r.Extensions["SIZE"]
	if !found {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Direction tells who wrote a transcript line.
type Direction byte

// Transcript line directions.
const (
	Client Direction = 'C' // a line the probe sent
	Server Direction = 'S' // a line the server sent
	Note   Direction = '*' // what the probe did or found (resolution, TLS, failure)
)

// TranscriptLine is one line of a probe's transcript.
type TranscriptLine struct {
	// At is the time since the probe started.
	At time.Duration
	// Host names the exchanger in an MX probe's transcript; empty otherwise.
	Host string
	Dir  Direction
	Text string
}

// String formats the line as "[  0.012s] S: 220 mx.example.org ESMTP", with
// "[mx1.example.org] " before the direction in an MX probe.
func (l TranscriptLine) String() string { return string(l.AppendTo(nil)) }

// AppendTo appends the line, as String formats it, to b: a transcript is
// written line by line into one buffer without a string per line.
func (l TranscriptLine) AppendTo(b []byte) []byte {
	var num [32]byte
	secs := strconv.AppendFloat(num[:0], l.At.Seconds(), 'f', 3, 64)
	b = append(b, '[')
	for pad := 7 - len(secs); pad > 0; pad-- {
		b = append(b, ' ')
	}
	b = append(append(b, secs...), "s] "...)
	if l.Host != "" {
		b = append(append(append(b, '['), l.Host...), "] "...)
	}
	b = append(utf8.AppendRune(b, rune(l.Dir)), ": "...)
	return append(b, l.Text...)
}
