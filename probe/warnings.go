package probe

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
)

// resolverWarnings warns of every dane or mta_sts module whose verdicts
// rest on the AD bit of a resolver that is not on a loopback address: the
// exporter does not validate DNSSEC itself, it trusts the resolver's AD
// bit, which is worth what the path to that resolver is worth (RFC 4035
// 4.9.3). A module without a resolver trusts the system's, the first
// nameserver of /etc/resolv.conf: the warning names it. Valid, but worth a
// log line at every load; modules in name order.
func resolverWarnings(c *config.Config) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(c.Modules)) {
		m := c.Modules[name]
		var uses []string
		if m.DANE {
			uses = append(uses, "dane")
		}
		if m.MTASTS {
			uses = append(uses, "mta_sts")
		}
		if len(uses) == 0 {
			continue
		}
		if w := resolverWarning(m.Resolver); w != "" {
			out = append(out, fmt.Sprintf("module %q (%s): %s", name, strings.Join(uses, ", "), w))
		}
	}
	return out
}

// resolverWarning says why trusting resolver's AD bit is unwise, or
// nothing when it is on a loopback address.
func resolverWarning(resolver string) string {
	const advice = "use a DNSSEC-validating resolver on a loopback address (RFC 4035 4.9.3)"
	if resolver == "" {
		addrs, err := dnssec.SystemServers()
		if err != nil {
			return fmt.Sprintf("no resolver is set and the system's cannot be read (%v): its DNSSEC lookups will fail; %s", err, advice)
		}
		return fmt.Sprintf("no resolver is set: the AD bit of the system resolver %s (the nameservers of /etc/resolv.conf, asked in order) is trusted; %s",
			strings.Join(addrs, ", "), advice)
	}
	host, _, err := net.SplitHostPort(resolver)
	if err != nil {
		host = resolver // config checked host:port; kept for safety
	}
	if a, err := netip.ParseAddr(host); (err == nil && a.Unmap().IsLoopback()) || strings.EqualFold(host, "localhost") {
		return ""
	}
	return fmt.Sprintf("the AD bit of resolver %s, not on a loopback address, is trusted: nothing protects the path to it; %s", resolver, advice)
}
