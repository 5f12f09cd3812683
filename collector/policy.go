package collector

import (
	"fmt"
	"net/netip"
	"strings"
)

// ProbePolicy says which targets /probe may dial. Each entry is a CIDR
// (192.0.2.0/24), an address (192.0.2.7), or a host name pattern
// (mx.example.org, or *.example.org for any name below example.org). Deny
// wins; an empty allow list allows all that is not denied. Addresses are
// checked after resolution, against every address the name resolves to, and
// the probe then dials the checked address (no second lookup, so DNS
// rebinding cannot slip past). Link-local (169.254.0.0/16, fe80::/10, the
// cloud metadata range), unspecified, multicast and broadcast addresses are
// always denied to /probe.
type ProbePolicy struct {
	Allow []string `yaml:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty"`

	allow, deny policyRules
}

type policyRules struct {
	prefixes []netip.Prefix
	names    []string // exact names, or ".example.org" for "*.example.org"
}

// builtinDeny is denied whatever the config says.
var builtinDeny = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

func (p *ProbePolicy) compile() error {
	var err error
	if p.allow, err = compileRules("allow", p.Allow); err != nil {
		return err
	}
	p.deny, err = compileRules("deny", p.Deny)
	return err
}

func compileRules(list string, entries []string) (policyRules, error) {
	var r policyRules
	for _, e := range entries {
		switch {
		case strings.Contains(e, "/"):
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return r, fmt.Errorf("probe_policy.%s: %q is not a CIDR: %w", list, e, err)
			}
			r.prefixes = append(r.prefixes, unmapPrefix(pfx.Masked()))
		case isAddr(e):
			a := netip.MustParseAddr(e).Unmap()
			r.prefixes = append(r.prefixes, netip.PrefixFrom(a, a.BitLen()))
		case strings.HasPrefix(e, "*."):
			if err := checkHostName(e[2:]); err != nil {
				return r, fmt.Errorf("probe_policy.%s: %q: %w", list, e, err)
			}
			r.names = append(r.names, strings.ToLower(e[1:]))
		default:
			if err := checkHostName(e); err != nil {
				return r, fmt.Errorf("probe_policy.%s: %q is not a CIDR, an address or a host name pattern: %w", list, e, err)
			}
			r.names = append(r.names, strings.ToLower(strings.TrimSuffix(e, ".")))
		}
	}
	return r, nil
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// unmapPrefix turns ::ffff:192.0.2.0/120 into 192.0.2.0/24.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

func (r *policyRules) matchName(host string) bool {
	for _, n := range r.names {
		if n[0] == '.' {
			if strings.HasSuffix(host, n) {
				return true
			}
		} else if host == n {
			return true
		}
	}
	return false
}

func (r *policyRules) matchAddr(a netip.Addr) bool {
	for _, p := range r.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckName refuses a host name that a deny pattern matches, before any
// lookup. Addresses are judged by CheckAddr.
func (p *ProbePolicy) CheckName(host string) error {
	if p.deny.matchName(host) {
		return fmt.Errorf("target %s is denied by probe_policy", host)
	}
	return nil
}

// CheckAddr decides whether /probe may dial addr, which host resolved to.
func (p *ProbePolicy) CheckAddr(host string, addr netip.Addr) error {
	addr = addr.Unmap()
	for _, pfx := range builtinDeny {
		if pfx.Contains(addr) {
			return fmt.Errorf("address %s of %s is in %s, which /probe never dials", addr, host, pfx)
		}
	}
	if p.deny.matchName(host) || p.deny.matchAddr(addr) {
		return fmt.Errorf("address %s of %s is denied by probe_policy", addr, host)
	}
	if len(p.Allow) == 0 || p.allow.matchName(host) || p.allow.matchAddr(addr) {
		return nil
	}
	return fmt.Errorf("address %s of %s is not in probe_policy's allow list", addr, host)
}
