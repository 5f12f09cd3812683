package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// ProbePolicy says which targets /probe may dial. Each entry is a CIDR
// (192.0.2.0/24), an address (192.0.2.7), or a host name pattern
// (mx.example.org, or *.example.org for any name below example.org). Deny
// wins; an empty allow list allows all that is not denied. The exporter
// checks every address a target resolves to, after resolution.
type ProbePolicy struct {
	Allow []string `yaml:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty"`
}

type probePolicyKeys ProbePolicy

// UnmarshalYAML decodes the policy and checks every entry.
func (p *ProbePolicy) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal((*probePolicyKeys)(p)); err != nil {
		return err
	}
	for _, list := range []struct {
		key     string
		entries []string
	}{{"allow", p.Allow}, {"deny", p.Deny}} {
		for i, e := range list.entries {
			if _, err := ParsePattern(e, false); err != nil {
				return keyErrorf([]string{list.key, Index(i)}, "%w", err)
			}
		}
	}
	return nil
}

// Pattern is one entry of probe_policy or of auth.targets, parsed.
type Pattern struct {
	// Prefix is set for a CIDR or address entry.
	Prefix netip.Prefix
	// Host is a lower-case name without trailing dot; Suffix is true for
	// "*.example.org" (any name below example.org, Host "example.org").
	Host   string
	Suffix bool
	// Port, when not 0, must match too (auth.targets' host:port).
	Port uint16
}

// ParsePattern reads a pattern: a CIDR, an address, a host name or
// *.domain; with withPort, host:port and [v6addr]:port too, and no CIDR.
func ParsePattern(s string, withPort bool) (Pattern, error) {
	var p Pattern
	if !withPort && strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			// netip's error begins with the Go call: keep its reason.
			msg := err.Error()
			if i := strings.LastIndex(msg, "): "); i >= 0 {
				msg = msg[i+3:]
			}
			return p, fmt.Errorf("%q is not a CIDR such as 192.0.2.0/24: %s", s, msg)
		}
		p.Prefix = unmapPrefix(pfx.Masked())
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		p.Prefix = netip.PrefixFrom(a, a.BitLen())
		return p, nil
	}
	host := s
	if strings.HasPrefix(s, "*.") {
		p.Suffix, host = true, s[2:]
	}
	if withPort && !p.Suffix {
		h, port, err := ParseTarget(s, 0)
		if err != nil {
			return p, fmt.Errorf("%q is not a host, host:port or *.domain pattern: %w", s, err)
		}
		p.Port = port
		if a, err := netip.ParseAddr(h); err == nil {
			p.Prefix = netip.PrefixFrom(a, a.BitLen())
			return p, nil
		}
		p.Host = h
		return p, nil
	}
	if err := checkHostName(host); err != nil {
		return p, fmt.Errorf("%q is not a CIDR, an address or a host name pattern: %w", s, err)
	}
	p.Host = strings.ToLower(strings.TrimSuffix(host, "."))
	return p, nil
}

// unmapPrefix turns ::ffff:192.0.2.0/120 into 192.0.2.0/24.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// MatchName reports whether a host name pattern matches host (lower case,
// no trailing dot) and, if the pattern has a port, port.
func (p Pattern) MatchName(host string, port uint16) bool {
	if p.Host == "" || (p.Port != 0 && p.Port != port) {
		return false
	}
	if p.Suffix {
		return strings.HasSuffix(host, "."+p.Host)
	}
	return host == p.Host
}

// MatchAddr reports whether a CIDR or address pattern holds addr and, if the
// pattern has a port, port matches.
func (p Pattern) MatchAddr(addr netip.Addr, port uint16) bool {
	if !p.Prefix.IsValid() || (p.Port != 0 && p.Port != port) {
		return false
	}
	return p.Prefix.Contains(addr.Unmap())
}
