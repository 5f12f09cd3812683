package probe

import (
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/dnssec"
)

// TestBuildResolverWarnings: a dane or mta_sts module trusts its resolver's
// AD bit, which is worth something only over loopback (RFC 4035 4.9.3):
// any other resolver, or the system's (named from /etc/resolv.conf), is
// warned of at load; the load still succeeds.
func TestBuildResolverWarnings(t *testing.T) {
	s := build(t, `modules:
  loop4: {tls: starttls, dane: true, resolver: "127.0.0.1:53"}
  loop6: {tls: starttls, dane: true, resolver: "[::1]:5353"}
  localhost: {tls: starttls, dane: true, resolver: "localhost:53"}
  remote: {tls: starttls, dane: true, resolver: "192.0.2.53:53"}
  sts: {mx_lookup: true, mta_sts: true, dane: true, tls: starttls, resolver: "[2001:db8::53]:53"}
  system: {tls: starttls, dane: true}
  plain: {resolver: "192.0.2.53:53"}
`, ".")
	got := strings.Join(s.Warnings, "\n")
	if len(s.Warnings) != 3 {
		t.Fatalf("%d warnings, want 3 (remote, sts, system):\n%s", len(s.Warnings), got)
	}
	for i, want := range []string{
		`module "remote" (dane): the AD bit of resolver 192.0.2.53:53, not on a loopback address, is trusted`,
		`module "sts" (dane, mta_sts): the AD bit of resolver [2001:db8::53]:53, not on a loopback address, is trusted`,
		`module "system" (dane): `,
	} {
		if !strings.HasPrefix(s.Warnings[i], want) || !strings.Contains(s.Warnings[i], "RFC 4035 4.9.3") {
			t.Errorf("warning %d: %q, want it to begin with %q and cite RFC 4035", i, s.Warnings[i], want)
		}
	}
	// The system resolver: the warning says which one is trusted.
	if addr, err := dnssec.ResolverAddr(""); err == nil {
		if !strings.Contains(s.Warnings[2], "the system resolver "+addr+" (the nameservers of /etc/resolv.conf, asked in order)") {
			t.Errorf("the warning does not name the system's resolver %s: %q", addr, s.Warnings[2])
		}
	} else if !strings.Contains(s.Warnings[2], "cannot be read") {
		t.Errorf("no system resolver (%v), yet the warning says %q", err, s.Warnings[2])
	}
}
