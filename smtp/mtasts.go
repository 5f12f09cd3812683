package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PhaseMTASTS is the MTA-STS policy's TXT lookup and HTTPS fetch.
const PhaseMTASTS Phase = "mta_sts"

// ReasonMTASTS fails a probe in MTA-STS enforce mode: an MX that no policy
// pattern matches, or whose certificate does not validate for its name.
const ReasonMTASTS Reason = "mta_sts"

// MTA-STS modes (RFC 8461 3.2).
const (
	MTASTSEnforce = "enforce"
	MTASTSTesting = "testing"
	MTASTSNone    = "none"
)

// Limits of the MTA-STS policy.
const (
	// MTASTSMaxPolicySize caps the policy body; a larger one is refused.
	MTASTSMaxPolicySize = 64 << 10
	// MTASTSMaxAge is the largest max_age RFC 8461 allows (about a year).
	MTASTSMaxAge = 31557600
)

// MTASTSRecord is the _mta-sts TXT record (RFC 8461 3.1).
type MTASTSRecord struct {
	// ID identifies the policy version: 1 to 32 letters and digits.
	ID string
}

// ParseMTASTSRecord parses one TXT record: "v=STSv1; id=20160831085700Z;",
// the version first, fields separated by ";" with optional spaces around
// them, an id of 1 to 32 alphanumerics, other well-formed fields ignored.
func ParseMTASTSRecord(txt string) (*MTASTSRecord, error) {
	fields := strings.Split(txt, ";")
	if n := len(fields); n > 1 && strings.TrimSpace(fields[n-1]) == "" {
		fields = fields[:n-1] // a trailing ";"
	}
	var rec MTASTSRecord
	seen := map[string]bool{}
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		key, value, ok := strings.Cut(f, "=")
		if !ok || !isSTSKey(key) || value == "" {
			return nil, fmt.Errorf("mta-sts record: field %q is not key=value", f)
		}
		if seen[key] {
			return nil, fmt.Errorf("mta-sts record: %q twice", key)
		}
		seen[key] = true
		switch {
		case i == 0:
			if key != "v" || value != "STSv1" {
				return nil, fmt.Errorf("mta-sts record: does not begin with v=STSv1")
			}
		case key == "id":
			if len(value) > 32 || !isAlnum(value) {
				return nil, fmt.Errorf("mta-sts record: id %q is not 1 to 32 letters and digits", value)
			}
			rec.ID = value
		default:
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

// MTASTSPolicy is a parsed policy file (RFC 8461 3.2).
type MTASTSPolicy struct {
	// Mode is enforce, testing or none.
	Mode string
	// MX are the patterns: "mx.example.org" or "*.example.org", in lower
	// case without a trailing dot.
	MX []string
	// MaxAge is the policy's lifetime in seconds, 0 to MTASTSMaxAge.
	MaxAge int64
}

// ParseMTASTSPolicy parses a policy strictly: lines "key: value" ending in
// CRLF or LF; "version: STSv1" first; exactly one mode (enforce, testing,
// none) and one max_age (0 to 31557600 seconds, digits only); "mx" lines
// with a host name or "*." and a host name, at least one unless the mode is
// none. Other well-formed fields are ignored (extensions); a repeated
// version, mode or max_age, a malformed line or value fails.
func ParseMTASTSPolicy(body []byte) (*MTASTSPolicy, error) {
	if len(body) > MTASTSMaxPolicySize {
		return nil, fmt.Errorf("mta-sts policy: larger than %d bytes", MTASTSMaxPolicySize)
	}
	p := &MTASTSPolicy{MaxAge: -1}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1024), MTASTSMaxPolicySize+1)
	n := 0
	version := false
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
		if !version && key != "version" {
			return nil, fmt.Errorf("mta-sts policy: line %d: %q before version", n, key)
		}
		switch key {
		case "version":
			if version {
				return nil, errors.New("mta-sts policy: version twice")
			}
			if value != "STSv1" {
				return nil, fmt.Errorf("mta-sts policy: version %q is not STSv1", value)
			}
			version = true
		case "mode":
			if p.Mode != "" {
				return nil, errors.New("mta-sts policy: mode twice")
			}
			switch value {
			case MTASTSEnforce, MTASTSTesting, MTASTSNone:
				p.Mode = value
			default:
				return nil, fmt.Errorf("mta-sts policy: mode %q is not enforce, testing or none", value)
			}
		case "max_age":
			if p.MaxAge >= 0 {
				return nil, errors.New("mta-sts policy: max_age twice")
			}
			if len(value) > 10 || strings.TrimLeft(value, "0123456789") != "" {
				return nil, fmt.Errorf("mta-sts policy: max_age %q is not a number of seconds", value)
			}
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil || v > MTASTSMaxAge {
				return nil, fmt.Errorf("mta-sts policy: max_age %q is not 0 to %d", value, MTASTSMaxAge)
			}
			p.MaxAge = v
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validMXPattern(pat) {
				return nil, fmt.Errorf("mta-sts policy: mx %q is not a host name or *.host name", value)
			}
			p.MX = append(p.MX, pat)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	switch {
	case !version:
		return nil, errors.New("mta-sts policy: no version")
	case p.Mode == "":
		return nil, errors.New("mta-sts policy: no mode")
	case p.MaxAge < 0:
		return nil, errors.New("mta-sts policy: no max_age")
	case len(p.MX) == 0 && p.Mode != MTASTSNone:
		return nil, fmt.Errorf("mta-sts policy: mode %s without any mx", p.Mode)
	}
	return p, nil
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
func (p *MTASTSPolicy) Matches(mxHost string) bool {
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
func (p *MTASTSPolicy) CheckMX(mxHost string, certVerified bool) error {
	if p.Mode == MTASTSNone {
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
func (p *MTASTSPolicy) Enforced() bool { return p.Mode == MTASTSEnforce }

// ErrMTASTSRefused is wrapped, with the hook's own error, when
// MTASTSOptions.CheckAddr refused an address of the policy host: nothing was
// dialled.
var ErrMTASTSRefused = errors.New("the address policy refused the mta-sts policy host")

// MTASTSFailure classifies an error of LookupMTASTS as the probe's failure
// in phase mta_sts: nil for ErrNoMTASTS (the domain has no policy, which is
// reported, not a failure), ReasonTimeout when the deadline passed,
// ReasonPolicy when CheckAddr refused the policy host, ReasonMTASTS for
// anything else (a published record whose policy cannot be fetched or
// parsed: a broken MTA-STS deployment).
func MTASTSFailure(err error) *Error {
	switch {
	case err == nil || errors.Is(err, ErrNoMTASTS):
		return nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return &Error{Phase: PhaseMTASTS, Reason: ReasonTimeout, Err: err}
	case errors.Is(err, ErrMTASTSRefused):
		return &Error{Phase: PhaseMTASTS, Reason: ReasonPolicy, Err: err}
	}
	return &Error{Phase: PhaseMTASTS, Reason: ReasonMTASTS, Err: err}
}

// CheckMXFailure is CheckMX as the probe's failure: ReasonMTASTS in phase
// mta_sts when the policy is enforced and host fails it; nil otherwise (in
// testing mode the mismatch is only reported).
func (p *MTASTSPolicy) CheckMXFailure(mxHost string, certVerified bool) *Error {
	if err := p.CheckMX(mxHost, certVerified); err != nil && p.Enforced() {
		return &Error{Phase: PhaseMTASTS, Reason: ReasonMTASTS, Err: err}
	}
	return nil
}
