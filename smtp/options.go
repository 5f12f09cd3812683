package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
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

// QuitBudget is the most time the polite QUIT after a failure may take,
// within the probe's deadline.
const QuitBudget = time.Second

// Auth holds AUTH credentials. Password is called once per probe, before the
// connection is made, so a password file can be read (and rotated) at probe time.
type Auth struct {
	Username string
	Password func() (string, error)
	// Mechanism is PLAIN, LOGIN or CRAM-MD5; empty picks the best one offered.
	Mechanism string
	// AllowPlaintext permits credentials over a connection without TLS.
	AllowPlaintext bool
}

// Options says what one probe does. It is read-only during a probe and may be
// shared by concurrent probes.
type Options struct {
	// HeloName is sent with EHLO and HELO.
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
	// IPProtocol is "ip4" (the default) or "ip6"; with IPProtocolFallback the
	// other is used when the host has no address of the preferred one.
	IPProtocol         string
	IPProtocolFallback bool
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	// Expect maps a phase to the reply class (2 to 5) that means success
	// there. The dialog stops after that phase (RSET if a transaction is open,
	// then QUIT), and a reply of another class fails with ReasonExpectation.
	Expect map[Phase]int
	// CheckAddr, when not nil, vets every address the host resolves to before
	// anything is dialled; an error fails the probe with ReasonPolicy. The
	// probe then dials the vetted address itself, so the name cannot be
	// resolved again to another one.
	CheckAddr func(host string, addr netip.Addr) error
	// Transcript, when not nil, receives every line sent and received.
	Transcript func(TranscriptLine)
}

// expectable lists the phases that an expectation may name.
var expectable = map[Phase]bool{PhaseBanner: true, PhaseEHLO: true, PhaseStartTLS: true, PhaseAuth: true,
	PhaseMail: true, PhaseRcpt: true, PhaseData: true, PhaseMessage: true}

// Validate checks the options before any connection is made: no CR, LF or
// other control characters in what is sent, and a coherent dialog.
func (o *Options) Validate() error {
	if o.HeloName == "" {
		return errors.New("helo_name is empty")
	}
	if err := checkToken("helo_name", o.HeloName); err != nil {
		return err
	}
	switch o.TLS {
	case "", TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fmt.Errorf("unknown tls mode %q (want none, starttls or implicit)", o.TLS)
	}
	switch o.IPProtocol {
	case "", "ip4", "ip6":
	default:
		return fmt.Errorf("unknown ip_protocol %q (want ip4 or ip6)", o.IPProtocol)
	}
	if o.MailFrom != "" && o.MailFrom != "<>" {
		if err := checkToken("mail_from", o.MailFrom); err != nil {
			return err
		}
	}
	for _, rcpt := range o.RcptTo {
		if rcpt == "" {
			return errors.New("rcpt_to has an empty address")
		}
		if err := checkToken("rcpt_to", rcpt); err != nil {
			return err
		}
	}
	if len(o.RcptTo) > 0 && o.MailFrom == "" {
		return errors.New("rcpt_to needs mail_from")
	}
	if o.SendData && len(o.RcptTo) == 0 {
		return errors.New("send_data needs rcpt_to")
	}
	if a := o.Auth; a != nil {
		if a.Username == "" || a.Password == nil {
			return errors.New("auth needs a username and a password")
		}
		if err := checkToken("auth username", a.Username); err != nil {
			return err
		}
		switch strings.ToUpper(a.Mechanism) {
		case "", "PLAIN", "LOGIN", "CRAM-MD5":
		default:
			return fmt.Errorf("unknown auth mechanism %q (want PLAIN, LOGIN or CRAM-MD5)", a.Mechanism)
		}
		if (o.TLS == "" || o.TLS == TLSNone) && !a.AllowPlaintext {
			return errors.New("auth without tls would send the password in clear: use tls starttls or implicit, or set allow_plaintext")
		}
	}
	for phase, class := range o.Expect {
		if !expectable[phase] {
			return fmt.Errorf("expect_reply: phase %q cannot carry an expectation", phase)
		}
		if class < 2 || class > 5 {
			return fmt.Errorf("expect_reply: class %dxx for phase %q is not 2xx to 5xx", class, phase)
		}
		if !o.reaches(phase) {
			return fmt.Errorf("expect_reply: phase %q is never reached by this module", phase)
		}
	}
	return nil
}

// reaches reports whether the dialog these options describe has the phase.
func (o *Options) reaches(p Phase) bool {
	switch p {
	case PhaseStartTLS:
		return o.TLS == TLSStartTLS
	case PhaseAuth:
		return o.Auth != nil
	case PhaseMail:
		return o.MailFrom != ""
	case PhaseRcpt:
		return len(o.RcptTo) > 0
	case PhaseData, PhaseMessage:
		return o.SendData
	}
	return true
}

// checkToken refuses values that would break or extend an SMTP command line.
func checkToken(what, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\r' || c == '\n':
			return fmt.Errorf("%s %q contains a line break", what, s)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%s %q contains a control character", what, s)
		case c == ' ' || c == '<' || c == '>':
			return fmt.Errorf("%s %q contains %q", what, s, c)
		}
	}
	if len(s) > 256 {
		return fmt.Errorf("%s is longer than 256 bytes", what)
	}
	return nil
}
