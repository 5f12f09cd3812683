package probe

import (
	"net/netip"
	"strconv"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/config"
)

func TestProbePolicy(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		host, addr  string
		wantErr     string
	}{
		{name: "empty policy allows", host: "mx.example.org", addr: "192.0.2.1"},
		{name: "empty policy allows loopback", host: "localhost", addr: "127.0.0.1"},
		{name: "metadata always denied", host: "169.254.169.254", addr: "169.254.169.254",
			wantErr: "target 169.254.169.254 is refused by the built-in deny list (link-local (cloud metadata))"},
		{name: "mapped metadata denied", host: "x", addr: "::ffff:169.254.169.254",
			wantErr: "target x is refused by the built-in deny list (link-local (cloud metadata))"},
		{name: "v6 link-local denied", host: "x", addr: "fe80::1", wantErr: "target x is refused by the built-in deny list (link-local)"},
		{name: "unspecified denied", host: "0.0.0.0", addr: "0.0.0.0", wantErr: "target 0.0.0.0 is refused by the built-in deny list (unspecified)"},
		{name: "v6 unspecified denied", host: "::", addr: "::", wantErr: "target :: is refused by the built-in deny list (unspecified)"},
		{name: "deny cidr", deny: []string{"10.0.0.0/8"}, host: "internal.example.org", addr: "10.1.2.3",
			wantErr: "target internal.example.org is refused by probe_policy.deny[0] \"10.0.0.0/8\""},
		{name: "deny cidr catches mapped address", deny: []string{"10.0.0.0/8"}, host: "x", addr: "::ffff:10.1.2.3",
			wantErr: "target x is refused by probe_policy.deny[0] \"10.0.0.0/8\""},
		{name: "mapped deny cidr catches v4", deny: []string{"::ffff:10.0.0.0/104"}, host: "x", addr: "10.1.2.3",
			wantErr: "target x is refused by probe_policy.deny[0] \"::ffff:10.0.0.0/104\""},
		{name: "deny wins over allow", allow: []string{"10.0.0.0/8"}, deny: []string{"10.9.0.0/16"}, host: "x", addr: "10.9.1.1",
			wantErr: "target x is refused by probe_policy.deny[0] \"10.9.0.0/16\""},
		{name: "allow cidr", allow: []string{"192.0.2.0/24"}, host: "mx.example.org", addr: "192.0.2.9"},
		{name: "not in allow", allow: []string{"192.0.2.0/24"}, host: "mx.example.org", addr: "198.51.100.1",
			wantErr: "target mx.example.org is refused by probe_policy.allow (no entry matches)"},
		{name: "allow name pattern", allow: []string{"*.example.org"}, host: "mx1.example.org", addr: "198.51.100.1"},
		{name: "pattern needs a subdomain", allow: []string{"*.example.org"}, host: "example.org", addr: "198.51.100.1",
			wantErr: "target example.org is refused by probe_policy.allow (no entry matches)"},
		{name: "pattern is not a suffix trick", allow: []string{"*.example.org"}, host: "evilexample.org", addr: "198.51.100.1",
			wantErr: "target evilexample.org is refused by probe_policy.allow (no entry matches)"},
		{name: "allowed name resolving to denied address", allow: []string{"*.example.org"}, deny: []string{"127.0.0.0/8"}, host: "rebind.example.org", addr: "127.0.0.1",
			wantErr: "target rebind.example.org is refused by probe_policy.deny[0] \"127.0.0.0/8\""},
		{name: "deny exact name", deny: []string{"secret.example.org"}, host: "secret.example.org", addr: "192.0.2.1",
			wantErr: "target secret.example.org is refused by probe_policy.deny[0] \"secret.example.org\""},
		{name: "allow single address", allow: []string{"192.0.2.7"}, host: "x", addr: "192.0.2.7"},
		{name: "aws ipv6 metadata", host: "x", addr: "fd00:ec2::254", wantErr: "target x is refused by the built-in deny list (AWS metadata (IPv6))"},
		{name: "gcp ipv6 metadata", host: "x", addr: "fd20:ce::254", wantErr: "target x is refused by the built-in deny list (Google Cloud metadata (IPv6))"},
		{name: "alibaba metadata", host: "x", addr: "100.100.100.200", wantErr: "target x is refused by the built-in deny list (Alibaba Cloud metadata)"},
		{name: "azure wireserver", host: "x", addr: "168.63.129.16", wantErr: "target x is refused by the built-in deny list (Azure host services)"},
		{name: "refusal never names the address", deny: []string{"10.0.0.0/8"}, host: "internal.example", addr: "10.11.12.13",
			wantErr: "target internal.example is refused by probe_policy.deny[0] \"10.0.0.0/8\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPolicy(&config.ProbePolicy{Allow: tc.allow, Deny: tc.deny})
			if err != nil {
				t.Fatal(err)
			}
			err = p.CheckAddr(tc.host, netip.MustParseAddr(tc.addr))
			if got := errString(err); got != tc.wantErr {
				t.Errorf("CheckAddr = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func TestProbePolicyCompileErrors(t *testing.T) {
	for entry, want := range map[string]string{
		"10.0.0.0/33": `probe_policy.deny[0]: "10.0.0.0/33" is not a CIDR such as 192.0.2.0/24: prefix length out of range`,
		"*.bad_ name": `probe_policy.deny[0]: "*.bad_ name" is not a CIDR, an address or a host name pattern: host name "bad_ name" contains ' '`,
		"not a host!": `probe_policy.deny[0]: "not a host!" is not a CIDR, an address or a host name pattern: host name "not a host!" contains ' '`,
	} {
		_, err := config.Parse([]byte("modules: {default: {}}\nprobe_policy:\n  deny: ["+strconv.Quote(entry)+"]\n"), ".")
		if errString(err) != want {
			t.Errorf("probe_policy.deny %q: %q, want %q", entry, errString(err), want)
		}
		if _, err := newPolicy(&config.ProbePolicy{Deny: []string{entry}}); errString(err) != want {
			t.Errorf("newPolicy(%q) = %q, want %q", entry, errString(err), want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
