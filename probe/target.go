package probe

import (
	"net/netip"

	"github.com/smtp-exporter/smtp_exporter/config"
)

// Target is a target parsed as its module reads it.
type Target struct {
	Plan *Plan
	// Raw is the target as given: the "target" label of static targets.
	Raw string
	// Host is the host name or address (lower case, no trailing dot), or
	// the domain of an mx_lookup module; Port is 0 for a domain.
	Host string
	Port uint16
	// Addr is set when Host is an IP address.
	Addr netip.Addr
	// Key is the normalised target, "host:port" or the domain: two
	// spellings of one target share their reply counters.
	Key string
	// Static is true for a target of the config's targets list.
	Static bool
}

// ParseTarget reads s as this plan's targets are read: a domain for an
// mx_lookup module, else host[:port] with the module's port as default.
func (p *Plan) ParseTarget(s string) (Target, error) {
	t := Target{Plan: p, Raw: s}
	if p.MX != nil {
		d, err := config.ParseDomain(s)
		if err != nil {
			return Target{}, err
		}
		t.Host, t.Key = d, d
		return t, nil
	}
	host, port, err := config.ParseTarget(s, p.Port)
	if err != nil {
		return Target{}, err
	}
	t.Host, t.Port, t.Key = host, port, config.JoinHostPort(host, port)
	if a, err := netip.ParseAddr(host); err == nil {
		t.Addr = a
	}
	return t, nil
}
