package probe

import (
	"fmt"
	"net/netip"

	"github.com/smtp-exporter/smtp_exporter/config"
)

// Policy is probe_policy compiled: which targets /probe may dial. Names are
// checked before any lookup, and every address a target resolves to before
// anything is dialled; the probe then dials the checked address itself, so
// DNS rebinding cannot slip past. Some ranges are always denied (see
// builtinDeny).
type Policy struct {
	allow, deny []rule
}

type rule struct {
	config.Pattern
	name string // what a refusal names: `probe_policy.deny[0] "10.0.0.0/8"`
}

// builtinDeny is denied to /probe whatever the config says: addresses that
// are never a mail server and often a way into the exporter's own network.
var builtinDeny = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("100.100.100.200/32"), "Alibaba Cloud metadata"},
	{netip.MustParsePrefix("168.63.129.16/32"), "Azure host services"},
	{netip.MustParsePrefix("192.0.0.192/32"), "Oracle Cloud metadata"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fd00:ec2::/32"), "AWS metadata (IPv6)"},
	{netip.MustParsePrefix("fd20:ce::/32"), "Google Cloud metadata (IPv6)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// RefusedError is a target or address that the policy does not let /probe
// dial. Its text names the rule, never the resolved address (which may be
// internal); Addr is for the debug log.
type RefusedError struct {
	Host string
	Addr netip.Addr // invalid when the name itself was refused
	Rule string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("target %s is refused by %s", e.Host, e.Rule)
}

func newPolicy(c *config.ProbePolicy) (*Policy, error) {
	p := &Policy{}
	for _, l := range []struct {
		name    string
		entries []string
		into    *[]rule
	}{{"allow", c.Allow, &p.allow}, {"deny", c.Deny, &p.deny}} {
		for i, e := range l.entries {
			pat, err := config.ParsePattern(e, false)
			if err != nil {
				return nil, config.AtKey(err, "probe_policy", l.name, config.Index(i))
			}
			*l.into = append(*l.into, rule{pat, fmt.Sprintf("probe_policy.%s[%d] %q", l.name, i, e)})
		}
	}
	return p, nil
}

// CheckName refuses a host name that a deny pattern matches, before any
// lookup. Addresses are judged by CheckAddr.
func (p *Policy) CheckName(host string) error {
	for _, r := range p.deny {
		if r.MatchName(host, 0) {
			return &RefusedError{Host: host, Rule: r.name}
		}
	}
	return nil
}

// CheckAddr decides whether /probe may dial addr, which host resolved to.
func (p *Policy) CheckAddr(host string, addr netip.Addr) error {
	addr = addr.Unmap()
	for _, b := range builtinDeny {
		if b.prefix.Contains(addr) {
			return &RefusedError{Host: host, Addr: addr, Rule: "the built-in deny list (" + b.what + ")"}
		}
	}
	for _, r := range p.deny {
		if r.MatchName(host, 0) || r.MatchAddr(addr, 0) {
			return &RefusedError{Host: host, Addr: addr, Rule: r.name}
		}
	}
	if len(p.allow) == 0 {
		return nil
	}
	for _, r := range p.allow {
		if r.MatchName(host, 0) || r.MatchAddr(addr, 0) {
			return nil
		}
	}
	return &RefusedError{Host: host, Addr: addr, Rule: "probe_policy.allow (no entry matches)"}
}
