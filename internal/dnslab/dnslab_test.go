package dnslab

import (
	"errors"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

// TestLab starts a lab with a signed and an unsigned zone, checks that
// unbound validates the one and not the other, and that every process is
// gone once the lab's test ended.
func TestLab(t *testing.T) {
	Require(t)
	var pids []int
	t.Run("lab", func(t *testing.T) {
		lab := Start(t, Config{Zones: []Zone{
			{Name: "signed.test", Signed: true, Records: []string{"www A 127.0.0.2", "txt TXT \"hello\""},
				Bogus: []string{"forged A 127.0.0.9"}},
			{Name: "plain.test.", Records: []string{"www A 127.0.0.3"}},
		}})
		for _, tc := range []struct {
			name     string
			qtype    uint16
			rcode    int
			ad       bool
			answered bool
		}{
			{"www.signed.test.", dns.TypeA, dns.RcodeSuccess, true, true},
			{"txt.signed.test.", dns.TypeTXT, dns.RcodeSuccess, true, true},
			{"nothing.signed.test.", dns.TypeA, dns.RcodeNameError, true, false},
			{"www.signed.test.", dns.TypeAAAA, dns.RcodeSuccess, true, false},
			{"forged.signed.test.", dns.TypeA, dns.RcodeServerFailure, false, false},
			{"www.plain.test.", dns.TypeA, dns.RcodeSuccess, false, true},
			{"nothing.plain.test.", dns.TypeA, dns.RcodeNameError, false, false},
		} {
			t.Run(tc.name+dns.TypeToString[tc.qtype], func(t *testing.T) {
				q := new(dns.Msg)
				q.SetQuestion(tc.name, tc.qtype)
				q.SetEdns0(1232, true)
				q.AuthenticatedData = true
				m, _, err := (&dns.Client{}).Exchange(q, lab.Resolver)
				if err != nil {
					t.Fatal(err)
				}
				got := 0
				for _, rr := range m.Answer {
					if rr.Header().Rrtype == tc.qtype {
						got++
					}
				}
				if m.Rcode != tc.rcode || m.AuthenticatedData != tc.ad || (got > 0) != tc.answered {
					t.Errorf("rcode %s ad %t answers %d; want %s %t %t", dns.RcodeToString[m.Rcode], m.AuthenticatedData,
						got, dns.RcodeToString[tc.rcode], tc.ad, tc.answered)
				}
			})
		}
		if len(lab.TrustAnchors) != 1 {
			t.Errorf("trust anchors %q, want one DS", lab.TrustAnchors)
		}
		for _, p := range lab.procs {
			pids = append(pids, p.cmd.Process.Pid)
		}
	})
	if len(pids) != 2 {
		t.Fatalf("the lab ran %d processes, want nsd and unbound", len(pids))
	}
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still there after the lab stopped (%v)", pid, err)
		}
	}
}
