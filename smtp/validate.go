package smtp

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// FieldError is a problem with one field of Options. Field is the Go name
// ("HeloName", "RcptTo[1]", "Auth.Mechanism"), so a configuration layer can
// name its own key instead.
type FieldError struct {
	Field string
	Err   error
}

// Error formats the problem as "Field: what is wrong".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the problem without the field name.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, err error) *FieldError { return &FieldError{Field: field, Err: err} }

func fieldErrf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// expectable lists the phases that an expectation may name.
var expectable = map[Phase]bool{PhaseBanner: true, PhaseEHLO: true, PhaseStartTLS: true, PhaseAuth: true,
	PhaseMail: true, PhaseRcpt: true, PhaseData: true, PhaseMessage: true}

// Validate checks the options once, before they are used for probes: nothing
// in what is sent can break or extend a command line, and the dialog is
// coherent. The error is a *FieldError naming the Go field.
func (o *Options) Validate() error {
	if err := CheckHeloName(o.HeloName); err != nil {
		return fieldErr("HeloName", err)
	}
	switch o.TLS {
	case "", TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return fieldErrf("TLS", "unknown mode %q (want none, starttls or implicit)", o.TLS)
	}
	switch o.IPProtocol {
	case "", "ip4", "ip6":
	default:
		return fieldErrf("IPProtocol", "unknown protocol %q (want ip4 or ip6)", o.IPProtocol)
	}
	if o.Resolver != "" {
		if err := checkHostPort(o.Resolver); err != nil {
			return fieldErr("Resolver", err)
		}
	}
	if o.MailFrom != "" && o.MailFrom != "<>" {
		if err := CheckMailbox(o.MailFrom); err != nil {
			return fieldErr("MailFrom", err)
		}
	}
	for i, rcpt := range o.RcptTo {
		if err := CheckMailbox(rcpt); err != nil {
			return fieldErr("RcptTo["+strconv.Itoa(i)+"]", err)
		}
	}
	if len(o.RcptTo) > 0 && o.MailFrom == "" {
		return fieldErrf("RcptTo", "needs MailFrom")
	}
	if o.SendData && len(o.RcptTo) == 0 {
		return fieldErrf("SendData", "needs RcptTo")
	}
	if err := o.validateAuth(); err != nil {
		return err
	}
	for phase, class := range o.Expect {
		field := "Expect[" + string(phase) + "]"
		if !expectable[phase] {
			return fieldErrf(field, "phase %q cannot carry an expectation", phase)
		}
		if class < 2 || class > 5 {
			return fieldErrf(field, "class %dxx is not 2xx to 5xx", class)
		}
		if !o.reaches(phase) {
			return fieldErrf(field, "phase %q is never reached by these options", phase)
		}
	}
	return nil
}

func (o *Options) validateAuth() error {
	a := o.Auth
	if a == nil {
		return nil
	}
	if a.Username == "" {
		return fieldErrf("Auth.Username", "is empty")
	}
	if err := checkLine(a.Username); err != nil {
		return fieldErr("Auth.Username", err)
	}
	switch mech := strings.ToUpper(a.Mechanism); mech {
	case "", "PLAIN", "LOGIN", "CRAM-MD5":
		if a.Password == nil {
			return fieldErrf("Auth.Password", "is not set (%s needs a password)", cmp.Or(mech, "AUTH"))
		}
		if a.Token != nil {
			return fieldErrf("Auth.Token", "is set, but %s takes a password: use XOAUTH2 or OAUTHBEARER with a token", cmp.Or(mech, "picking the best mechanism offered"))
		}
	case "XOAUTH2", "OAUTHBEARER":
		if a.Token == nil {
			return fieldErrf("Auth.Token", "is not set (%s needs a bearer token)", mech)
		}
		if a.Password != nil {
			return fieldErrf("Auth.Password", "is set, but %s takes a bearer token, not a password", mech)
		}
	default:
		return fieldErrf("Auth.Mechanism", "unknown mechanism %q (want PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER)", a.Mechanism)
	}
	if (o.TLS == "" || o.TLS == TLSNone) && !a.AllowPlaintext {
		return fieldErrf("Auth", "without TLS the password would be sent in clear: use TLS starttls or implicit, or set Auth.AllowPlaintext")
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

// CheckHeloName reports whether s may be sent with EHLO and HELO: an RFC 5321
// Domain (letters, digits and hyphens in dot-separated labels of at most 63
// bytes, at most 255 bytes in all, no trailing dot) or an address literal,
// "[192.0.2.1]" or "[IPv6:2001:db8::1]". Only ASCII is allowed.
func CheckHeloName(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if err := checkASCII(s); err != nil {
		return err
	}
	if strings.HasPrefix(s, "[") {
		return checkAddressLiteral(s)
	}
	return checkDomain(s)
}

// checkASCII refuses bytes outside printable ASCII.
func checkASCII(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n':
			return fmt.Errorf("%q contains a line break", s)
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%q contains a control character", s)
		case c >= 0x80:
			return fmt.Errorf("%q contains a non-ASCII character", s)
		}
	}
	return nil
}

// checkDomain checks an RFC 5321 Domain: sub-domain *("." sub-domain).
func checkDomain(s string) error {
	if len(s) > 255 {
		return fmt.Errorf("%q is longer than 255 bytes", s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q has a label longer than 63 bytes", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q has a label that starts or ends with a hyphen", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
				return fmt.Errorf("%q is not a domain: %q is not a letter, digit or hyphen", s, c)
			}
		}
	}
	return nil
}

// checkAddressLiteral checks "[IPv4]" or "[IPv6:addr]" (RFC 5321 4.1.3).
func checkAddressLiteral(s string) error {
	inner, ok := strings.CutSuffix(strings.TrimPrefix(s, "["), "]")
	if !ok {
		return fmt.Errorf("%q is not an address literal: no closing ]", s)
	}
	if v6, ok := cutPrefixFold(inner, "IPv6:"); ok {
		if a, err := netip.ParseAddr(v6); err == nil && a.Is6() && a.Zone() == "" {
			return nil
		}
		return fmt.Errorf("%q is not an IPv6 address literal", s)
	}
	if a, err := netip.ParseAddr(inner); err == nil && a.Is4() {
		return nil
	}
	return fmt.Errorf("%q is not an address literal ([192.0.2.1] or [IPv6:2001:db8::1])", s)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// CheckMailbox reports whether s may be sent in MAIL FROM:<s> or RCPT TO:<s>:
// local-part@domain, where the domain is an RFC 5321 Domain or address
// literal (see CheckHeloName), or the bare "postmaster" (RFC 5321 4.5.1).
// The local part is printable ASCII without spaces, '<' or '>' (quoted local
// parts with spaces are not supported), at most 64 bytes; the whole at most
// 254. The null sender "<>" is the caller's to handle.
func CheckMailbox(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if err := checkASCII(s); err != nil {
		return err
	}
	if len(s) > 254 {
		return fmt.Errorf("%q is longer than 254 bytes", s)
	}
	if strings.EqualFold(s, "postmaster") {
		return nil
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return fmt.Errorf("%q is not local-part@domain", s)
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return fmt.Errorf("%q has an empty local part", s)
	}
	if len(local) > 64 {
		return fmt.Errorf("%q has a local part longer than 64 bytes", s)
	}
	if i := strings.IndexAny(local, " <>"); i >= 0 {
		return fmt.Errorf("%q contains %q", s, local[i])
	}
	if domain == "" {
		return fmt.Errorf("%q has an empty domain", s)
	}
	var err error
	if strings.HasPrefix(domain, "[") {
		err = checkAddressLiteral(domain)
	} else {
		err = checkDomain(domain)
	}
	if err != nil {
		return fmt.Errorf("%q: domain %w", s, err)
	}
	return nil
}

// checkHostPort checks "host:port" with a numeric port.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || host == "" {
		return fmt.Errorf("%q is not host:port with a port from 1 to 65535", s)
	}
	return nil
}

// checkLine refuses what would break or extend an SMTP command line.
func checkLine(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n':
			return errors.New("contains a line break")
		case c < 0x20 || c == 0x7f:
			return errors.New("contains a control character")
		}
	}
	if len(s) > 256 {
		return errors.New("is longer than 256 bytes")
	}
	return nil
}
