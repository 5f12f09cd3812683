package server

import (
	"net"
	"strconv"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestProbeMTASTSHostVettedByPolicy: with an mta_sts module, /probe also
// fetches https://mta-sts.DOMAIN/ of whatever domain the caller names;
// probe_policy vets every address of that host before anything is
// dialled, as it vets the exchangers. A refused one answers 403 naming the
// rule (not the address), and neither the policy host nor any exchanger is
// dialled. (The README's Security section says so.)
func TestProbeMTASTSHostVettedByPolicy(t *testing.T) {
	mx := smtptest.Start(t, smtptest.OK)
	_, port, _ := net.SplitHostPort(mx.Addr)
	dnsSrv := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"example.test. MX":              {"10 mx.example.test."},
		"mx.example.test. A":            {"127.0.0.1"},
		"_mta-sts.example.test. TXT":    {strconv.Quote("v=STSv1; id=20260101T000000;")},
		"mta-sts.example.test. A":       {"127.0.0.1", "127.0.0.3"},
		"internal.test. MX":             {"10 mx.example.test."},
		"_mta-sts.internal.test. TXT":   {strconv.Quote("v=STSv1; id=1;")},
		"mta-sts.internal.test. A":      {"127.0.0.3"},
		"mta-sts.internal.test. AAAA":   {"::1"},
		"_mta-sts.named-deny.test. TXT": {strconv.Quote("v=STSv1; id=1;")},
		"named-deny.test. MX":           {"10 mx.example.test."},
		"mta-sts.named-deny.test. A":    {"127.0.0.1"},
	}})
	conf := `
modules:
  sts:
    helo_name: probe.test
    port: ` + port + `
    mx_lookup: true
    tls: starttls
    mta_sts: true
    resolver: ` + dnsSrv.Addr + `
probe_policy:
  deny: [127.0.0.3/32, mta-sts.named-deny.test]
`
	s, _ := newTestServer(t, conf, Options{})
	for _, tc := range []struct{ domain, want string }{
		// One address of two refused: nothing is fetched from the other.
		{"example.test", "target mta-sts.example.test is refused by probe_policy.deny[0] \"127.0.0.3/32\"\n"},
		{"internal.test", "target mta-sts.internal.test is refused by probe_policy.deny[0] \"127.0.0.3/32\"\n"},
		// A name pattern of the policy applies to the policy host's name.
		{"named-deny.test", "target mta-sts.named-deny.test is refused by probe_policy.deny[1] \"mta-sts.named-deny.test\"\n"},
	} {
		code, body := get(t, s.Probe(), probeURL(tc.domain, "sts"), nil)
		if code != 403 || body != tc.want {
			t.Errorf("%s: %d %q, want 403 %q", tc.domain, code, body, tc.want)
		}
	}
	if n := mx.Accepted.Load(); n != 0 {
		t.Errorf("the exchanger was dialled %d times, want none", n)
	}
}
