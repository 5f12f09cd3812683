package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseTarget reads a target: host, host:port, [v6addr]:port, [v6addr],
// v4addr:port, or a bare IPv6 address. The port defaults to defaultPort.
// Host names must be valid DNS names; a name whose last label is numeric or
// a hex number (2130706433, 0x7f.1, 127.1) is refused, since resolvers read
// such spellings as IPv4 addresses.
func ParseTarget(s string, defaultPort uint16) (host string, port uint16, err error) {
	if s == "" {
		return "", 0, errors.New("missing target")
	}
	if len(s) > 300 {
		return "", 0, errors.New("target is longer than 300 bytes")
	}
	host, portStr := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("target %q: missing ']'", s)
		}
		host, portStr = s[1:end], s[end+1:]
		if portStr != "" {
			if portStr[0] != ':' {
				return "", 0, fmt.Errorf("target %q: junk after ']'", s)
			}
			portStr = portStr[1:]
			if portStr == "" {
				return "", 0, fmt.Errorf("target %q: empty port", s)
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", 0, fmt.Errorf("target %q: %q is not an IPv6 address", s, host)
		}
	case strings.Count(s, ":") > 1:
		// A bare IPv6 address.
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return "", 0, fmt.Errorf("target %q: not a host, host:port or [IPv6]:port", s)
		}
	case strings.Contains(s, ":"):
		host, portStr, _ = strings.Cut(s, ":")
		if portStr == "" {
			return "", 0, fmt.Errorf("target %q: empty port", s)
		}
	}
	port = defaultPort
	if portStr != "" {
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || n == 0 || portStr[0] == '+' {
			return "", 0, fmt.Errorf("target %q: port %q is not a number from 1 to 65535", s, portStr)
		}
		port = uint16(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return "", 0, fmt.Errorf("target %q: addresses with a zone are not probed", s)
		}
		return a.String(), port, nil
	}
	if err := checkHostName(host); err != nil {
		return "", 0, fmt.Errorf("target %q: %w", s, err)
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), port, nil
}

// ParseDomain reads the target of an mx_lookup module: a domain name, with
// no port.
func ParseDomain(s string) (string, error) {
	if s == "" {
		return "", errors.New("missing target")
	}
	if err := checkHostName(s); err != nil {
		return "", fmt.Errorf("target %q: an mx_lookup module takes a domain name: %w", s, err)
	}
	return strings.ToLower(strings.TrimSuffix(s, ".")), nil
}

// checkHostName accepts DNS names made of letters, digits, '-' and '_'
// (RFC 1123, with the underscore some internal names use).
func checkHostName(h string) error {
	name := strings.TrimSuffix(h, ".")
	if name == "" {
		return errors.New("empty host name")
	}
	if len(name) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host name %q has an empty or over-long label", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host name %q has a label starting or ending with '-'", h)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !isHostChar(c) {
				return fmt.Errorf("host name %q contains %q", h, c)
			}
		}
	}
	last := labels[len(labels)-1]
	if isNumeric(last) {
		return fmt.Errorf("%q is not an IP address and not a host name (its last label is numeric)", h)
	}
	for _, l := range labels {
		if len(l) > 2 && (l[:2] == "0x" || l[:2] == "0X") && isHex(l[2:]) {
			return fmt.Errorf("%q looks like a hex-encoded IPv4 address", h)
		}
	}
	return nil
}

func isNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("0123456789abcdefABCDEF", s[i]) < 0 {
			return false
		}
	}
	return s != ""
}

// isHostChar: letters, digits, '-' and '_'.
func isHostChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// JoinHostPort writes host and port as a target: "host:port", or
// "[v6addr]:port".
func JoinHostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
