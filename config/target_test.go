package config

import "testing"

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort uint16
		wantErr  string
	}{
		{in: "mx.example.org", wantHost: "mx.example.org", wantPort: 25},
		{in: "MX.Example.ORG.", wantHost: "mx.example.org", wantPort: 25},
		{in: "mx.example.org:587", wantHost: "mx.example.org", wantPort: 587},
		{in: "192.0.2.7:2525", wantHost: "192.0.2.7", wantPort: 2525},
		{in: "192.0.2.7", wantHost: "192.0.2.7", wantPort: 25},
		{in: "[2001:db8::1]:465", wantHost: "2001:db8::1", wantPort: 465},
		{in: "[2001:db8::1]", wantHost: "2001:db8::1", wantPort: 25},
		{in: "2001:db8::1", wantHost: "2001:db8::1", wantPort: 25},
		{in: "[::ffff:127.0.0.1]:25", wantHost: "::ffff:127.0.0.1", wantPort: 25},
		{in: "localhost", wantHost: "localhost", wantPort: 25},
		{in: "_smtp.example.org", wantHost: "_smtp.example.org", wantPort: 25},
		{in: "", wantErr: "missing target"},
		{in: "mx.example.org:", wantErr: `target "mx.example.org:": empty port`},
		{in: "mx.example.org:0", wantErr: `target "mx.example.org:0": port "0" is not a number from 1 to 65535`},
		{in: "mx.example.org:65536", wantErr: `target "mx.example.org:65536": port "65536" is not a number from 1 to 65535`},
		{in: "mx.example.org:+25", wantErr: `target "mx.example.org:+25": port "+25" is not a number from 1 to 65535`},
		{in: "mx.example.org:smtp", wantErr: `target "mx.example.org:smtp": port "smtp" is not a number from 1 to 65535`},
		{in: "smtp://mx.example.org", wantErr: `target "smtp://mx.example.org": port "//mx.example.org" is not a number from 1 to 65535`},
		{in: "[2001:db8::1", wantErr: `target "[2001:db8::1": missing ']'`},
		{in: "[192.0.2.1]:25", wantErr: `target "[192.0.2.1]:25": "192.0.2.1" is not an IPv6 address`},
		{in: "[2001:db8::1]x", wantErr: `target "[2001:db8::1]x": junk after ']'`},
		{in: "[fe80::1%eth0]:25", wantErr: `target "[fe80::1%eth0]:25": "fe80::1%eth0" is not an IPv6 address`},
		{in: "2130706433", wantErr: `target "2130706433": "2130706433" is not an IP address and not a host name (its last label is numeric)`},
		{in: "127.1", wantErr: `target "127.1": "127.1" is not an IP address and not a host name (its last label is numeric)`},
		{in: "0177.0.0.1", wantErr: `target "0177.0.0.1": "0177.0.0.1" is not an IP address and not a host name (its last label is numeric)`},
		{in: "0x7f000001", wantErr: `target "0x7f000001": "0x7f000001" looks like a hex-encoded IPv4 address`},
		{in: "0x7f.0.0.1:25", wantErr: `target "0x7f.0.0.1:25": "0x7f.0.0.1" is not an IP address and not a host name (its last label is numeric)`},
		{in: "mx example.org", wantErr: `target "mx example.org": host name "mx example.org" contains ' '`},
		{in: "mx.example.org\r\nQUIT", wantErr: `target "mx.example.org\r\nQUIT": host name "mx.example.org\r\nQUIT" contains '\r'`},
		{in: "-mx.example.org", wantErr: `target "-mx.example.org": host name "-mx.example.org" has a label starting or ending with '-'`},
		{in: "mx..example.org", wantErr: `target "mx..example.org": host name "mx..example.org" has an empty or over-long label`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			host, port, err := ParseTarget(tc.in, 25)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || host != tc.wantHost || port != tc.wantPort {
				t.Fatalf("= %q, %d, %v; want %q, %d", host, port, err, tc.wantHost, tc.wantPort)
			}
		})
	}
}

// FuzzParseTarget: the target parser never panics, and what it accepts is a
// host without control characters and a non-zero port.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"mx.example.org", "[::1]:25", "192.0.2.1:2525", "0x7f.1", "a:b:c", "[", "]:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := ParseTarget(s, 25)
		if err != nil {
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("ParseTarget(%q) = %q, %d", s, host, port)
		}
		for _, c := range []byte(host) {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("ParseTarget(%q) = host %q with byte %#x", s, host, c)
			}
		}
	})
}
