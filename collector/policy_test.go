package collector

import (
	"net/netip"
	"testing"
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
			wantErr: "address 169.254.169.254 of 169.254.169.254 is in 169.254.0.0/16, which /probe never dials"},
		{name: "mapped metadata denied", host: "x", addr: "::ffff:169.254.169.254",
			wantErr: "address 169.254.169.254 of x is in 169.254.0.0/16, which /probe never dials"},
		{name: "v6 link-local denied", host: "x", addr: "fe80::1", wantErr: "address fe80::1 of x is in fe80::/10, which /probe never dials"},
		{name: "unspecified denied", host: "0.0.0.0", addr: "0.0.0.0", wantErr: "address 0.0.0.0 of 0.0.0.0 is in 0.0.0.0/8, which /probe never dials"},
		{name: "v6 unspecified denied", host: "::", addr: "::", wantErr: "address :: of :: is in ::/128, which /probe never dials"},
		{name: "deny cidr", deny: []string{"10.0.0.0/8"}, host: "internal.example.org", addr: "10.1.2.3",
			wantErr: "address 10.1.2.3 of internal.example.org is denied by probe_policy"},
		{name: "deny cidr catches mapped address", deny: []string{"10.0.0.0/8"}, host: "x", addr: "::ffff:10.1.2.3",
			wantErr: "address 10.1.2.3 of x is denied by probe_policy"},
		{name: "mapped deny cidr catches v4", deny: []string{"::ffff:10.0.0.0/104"}, host: "x", addr: "10.1.2.3",
			wantErr: "address 10.1.2.3 of x is denied by probe_policy"},
		{name: "deny wins over allow", allow: []string{"10.0.0.0/8"}, deny: []string{"10.9.0.0/16"}, host: "x", addr: "10.9.1.1",
			wantErr: "address 10.9.1.1 of x is denied by probe_policy"},
		{name: "allow cidr", allow: []string{"192.0.2.0/24"}, host: "mx.example.org", addr: "192.0.2.9"},
		{name: "not in allow", allow: []string{"192.0.2.0/24"}, host: "mx.example.org", addr: "198.51.100.1",
			wantErr: "address 198.51.100.1 of mx.example.org is not in probe_policy's allow list"},
		{name: "allow name pattern", allow: []string{"*.example.org"}, host: "mx1.example.org", addr: "198.51.100.1"},
		{name: "pattern needs a subdomain", allow: []string{"*.example.org"}, host: "example.org", addr: "198.51.100.1",
			wantErr: "address 198.51.100.1 of example.org is not in probe_policy's allow list"},
		{name: "pattern is not a suffix trick", allow: []string{"*.example.org"}, host: "evilexample.org", addr: "198.51.100.1",
			wantErr: "address 198.51.100.1 of evilexample.org is not in probe_policy's allow list"},
		{name: "allowed name resolving to denied address", allow: []string{"*.example.org"}, deny: []string{"127.0.0.0/8"}, host: "rebind.example.org", addr: "127.0.0.1",
			wantErr: "address 127.0.0.1 of rebind.example.org is denied by probe_policy"},
		{name: "deny exact name", deny: []string{"secret.example.org"}, host: "secret.example.org", addr: "192.0.2.1",
			wantErr: "address 192.0.2.1 of secret.example.org is denied by probe_policy"},
		{name: "allow single address", allow: []string{"192.0.2.7"}, host: "x", addr: "192.0.2.7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ProbePolicy{Allow: tc.allow, Deny: tc.deny}
			if err := p.compile(); err != nil {
				t.Fatal(err)
			}
			err := p.CheckAddr(tc.host, netip.MustParseAddr(tc.addr))
			if got := errString(err); got != tc.wantErr {
				t.Errorf("CheckAddr = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func TestProbePolicyCompileErrors(t *testing.T) {
	for entry, want := range map[string]string{
		"10.0.0.0/33": `probe_policy.deny: "10.0.0.0/33" is not a CIDR: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range`,
		"*.bad_ name": `probe_policy.deny: "*.bad_ name": host name "bad_ name" contains ' '`,
		"not a host!": `probe_policy.deny: "not a host!" is not a CIDR, an address or a host name pattern: host name "not a host!" contains ' '`,
	} {
		p := ProbePolicy{Deny: []string{entry}}
		if err := p.compile(); errString(err) != want {
			t.Errorf("compile(%q) = %q, want %q", entry, errString(err), want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
