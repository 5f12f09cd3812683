// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security (RFC 8461): the _mta-sts TXT record (section 3.1), the policy
// fetched over HTTPS from mta-sts.DOMAIN with its limits (section 3.3: no
// redirects, 64 KiB, text/plain, every address vetted by the caller's
// hook), its parsing (section 3.2) and the judgement of an MX host by it
// (section 4.1: an mx pattern matches, and the certificate is valid for the
// host's name). The parsers and the judgement are pure functions, tested
// without a network.
//
// It never caches a policy (a monitor wants to see what a sender fetching
// now would get), never dials an MX host, and never decides what a
// mismatch means for a probe: that is the caller's.
package mtasts

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MTA-STS modes (RFC 8461 3.2).
const (
	ModeEnforce = "enforce"
	ModeTesting = "testing"
	ModeNone    = "none"
)

// Limits of the MTA-STS policy.
const (
	// MaxPolicySize caps the policy body; a larger one is refused.
	MaxPolicySize = 64 << 10
	// MaxAge is the largest max_age RFC 8461 allows (about a year).
	MaxAge = 31557600
)

// Record is the _mta-sts TXT record (RFC 8461 3.1).
type Record struct {
	// ID identifies the policy version: 1 to 32 letters and digits.
	ID string
}

// ParseRecord parses one TXT record: "v=STSv1; id=20160831085700Z;",
// the version first, fields separated by ";" with optional spaces around
// them, an id of 1 to 32 alphanumerics, other well-formed fields ignored.
// Of a repeated field the first counts and the others are ignored, as RFC
// 8461 3.2's closing paragraph says of both the record and the policy: a
// second id= does not make the record invalid (which would mean "no
// policy").
func ParseRecord(txt string) (*Record, error) {
	fields := strings.Split(txt, ";")
	if n := len(fields); n > 1 && strings.TrimSpace(fields[n-1]) == "" {
		fields = fields[:n-1] // a trailing ";"
	}
	var rec Record
	seen := map[string]bool{}
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		key, value, ok := strings.Cut(f, "=")
		if !ok || !isSTSKey(key) || value == "" {
			return nil, fmt.Errorf("mta-sts record: field %q is not key=value", f)
		}
		first := !seen[key]
		seen[key] = true
		switch {
		case i == 0:
			if key != "v" || value != "STSv1" {
				return nil, fmt.Errorf("mta-sts record: does not begin with v=STSv1")
			}
		case key == "id" && first:
			if len(value) > 32 || !isAlnum(value) {
				return nil, fmt.Errorf("mta-sts record: id %q is not 1 to 32 letters and digits", value)
			}
			rec.ID = value
		default: // an extension, or a repeated field: well-formed, then ignored
			for _, c := range []byte(value) {
				if c < 0x21 || c > 0x7e || c == ';' || c == '=' {
					return nil, fmt.Errorf("mta-sts record: field %q has a bad value", key)
				}
			}
		}
	}
	if rec.ID == "" {
		return nil, errors.New("mta-sts record: no id")
	}
	return &rec, nil
}

// isSTSKey reports whether s is a field name: a letter or digit, then
// letters, digits, "_", "-", "." (RFC 8461 3.1 sts-ext-name, 32 at most).
func isSTSKey(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// isHostByte accepts what a lower-case host name label holds.
func isHostByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnumByte(c) {
			return false
		}
	}
	return s != ""
}

// Policy is a parsed policy file (RFC 8461 3.2).
type Policy struct {
	// Mode is enforce, testing or none.
	Mode string
	// MX are the patterns: "mx.example.org" or "*.example.org", in lower
	// case without a trailing dot.
	MX []string
	// MaxAge is the policy's lifetime in seconds, 0 to MaxAge.
	MaxAge int64
}

// ParsePolicy parses a policy: lines "key: value" ending in CRLF or LF, in
// any order (RFC 8461 3.2's grammar imposes none); "version: STSv1", a mode
// (enforce, testing, none) and a max_age (0 to 31557600 seconds, digits
// only) must be present; "mx" lines with a host name or "*." and a host
// name, at least one unless the mode is none. Of a repeated field other
// than mx the first counts and the others are ignored (RFC 8461 3.2), as
// are other well-formed fields (extensions); a malformed line, or a bad
// value of a field that counts, fails.
func ParsePolicy(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("mta-sts policy: larger than %d bytes", MaxPolicySize)
	}
	p := &Policy{MaxAge: -1}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1024), MaxPolicySize+1)
	n := 0
	seen := map[string]bool{}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		n++
		if line == "" {
			continue // a blank line, e.g. at the end
		}
		key, value, ok := strings.Cut(line, ":")
		value = strings.Trim(value, " \t")
		if !ok || !isSTSKey(key) || value == "" {
			return nil, fmt.Errorf("mta-sts policy: line %d is not \"key: value\"", n)
		}
		for _, c := range []byte(value) {
			if c < 0x20 || c == 0x7f {
				return nil, fmt.Errorf("mta-sts policy: line %d: control character in the value", n)
			}
		}
		if key != "mx" && seen[key] {
			continue // a repeated field: the first counts
		}
		seen[key] = true
		if err := p.set(key, value); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	switch {
	case !seen["version"]:
		return nil, errors.New("mta-sts policy: no version")
	case p.Mode == "":
		return nil, errors.New("mta-sts policy: no mode")
	case p.MaxAge < 0:
		return nil, errors.New("mta-sts policy: no max_age")
	case len(p.MX) == 0 && p.Mode != ModeNone:
		return nil, fmt.Errorf("mta-sts policy: mode %s without any mx", p.Mode)
	}
	return p, nil
}

// set records one field of the policy; other names than version, mode,
// max_age and mx are extensions, ignored.
func (p *Policy) set(key, value string) error {
	switch key {
	case "version":
		if value != "STSv1" {
			return fmt.Errorf("mta-sts policy: version %q is not STSv1", value)
		}
	case "mode":
		switch value {
		case ModeEnforce, ModeTesting, ModeNone:
			p.Mode = value
		default:
			return fmt.Errorf("mta-sts policy: mode %q is not enforce, testing or none", value)
		}
	case "max_age":
		if len(value) > 10 || strings.TrimLeft(value, "0123456789") != "" {
			return fmt.Errorf("mta-sts policy: max_age %q is not a number of seconds", value)
		}
		v, err := strconv.ParseInt(value, 10, 64)
		if err != nil || v > MaxAge {
			return fmt.Errorf("mta-sts policy: max_age %q is not 0 to %d", value, MaxAge)
		}
		p.MaxAge = v
	case "mx":
		pat := strings.ToLower(strings.TrimSuffix(value, "."))
		if !validMXPattern(pat) {
			return fmt.Errorf("mta-sts policy: mx %q is not a host name or *.host name", value)
		}
		p.MX = append(p.MX, pat)
	}
	return nil
}

// validMXPattern accepts a host name of two or more labels, optionally
// after "*." (lower case, no trailing dot).
func validMXPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if len(p) > 253 || !strings.Contains(p, ".") {
		return false
	}
	for _, label := range strings.Split(p, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isHostByte(c) {
				return false
			}
		}
	}
	return true
}

// Matches reports whether mxHost matches one of the policy's mx patterns
// (RFC 8461 4.1): case-insensitively, a trailing dot ignored, "*." standing
// for exactly one leftmost label.
func (p *Policy) Matches(mxHost string) bool {
	h := strings.ToLower(strings.TrimSuffix(mxHost, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(h, ".")
			if found && label != "" && parent == rest {
				return true
			}
		} else if h == pat {
			return true
		}
	}
	return false
}

// CheckMX judges one MX host by the policy (RFC 8461 4): it must match an
// mx pattern, and its certificate must have validated (WebPKI, for the MX
// host name; the caller's TLS verification). The error is nil in mode
// none; in mode testing the error is to be reported, not to fail the
// probe: Enforced says which.
func (p *Policy) CheckMX(mxHost string, certVerified bool) error {
	if p.Mode == ModeNone {
		return nil
	}
	if !p.Matches(mxHost) {
		return fmt.Errorf("mx %s matches no mx pattern of the mta-sts policy (%s)", mxHost, strings.Join(p.MX, ", "))
	}
	if !certVerified {
		return fmt.Errorf("mx %s: its certificate does not validate for its name, which mta-sts requires", mxHost)
	}
	return nil
}

// Enforced reports whether a CheckMX error fails the probe (mode enforce).
func (p *Policy) Enforced() bool { return p.Mode == ModeEnforce }

// ErrRefused is wrapped, with the hook's own error, when
// Options.CheckAddr refused an address of the policy host: nothing was
// dialled.
var ErrRefused = errors.New("the address policy refused the mta-sts policy host")
