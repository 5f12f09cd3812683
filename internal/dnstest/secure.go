package dnstest

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// SecZone is the data of a fake validating resolver (StartSec): records by "name. TYPE"
// in presentation form ("_25._tcp.mx.example.test. TLSA" -> "3 1 1 ab..";
// a value beginning with "=" is a whole record, for CNAME chains:
// "=alias.test. 60 IN CNAME mx.test."),
// the names ("name." or "name. TYPE") whose answers carry the AD bit,
// names answering NXDOMAIN, SERVFAIL or REFUSED, names never answered
// (Drop: a dead nameserver, the asker times out), and whether UDP answers
// are truncated (TC, no records).
type SecZone struct {
	Records   map[string][]string
	Secure    map[string]bool
	NXDomain  map[string]bool
	ServFail  map[string]bool
	Refused   map[string]bool
	Drop      map[string]bool
	Truncate  bool
	Questions chan<- *dns.Msg // every query received, when not nil (never blocks)
}

// StartSec serves zone on 127.0.0.1 (UDP and TCP, one port) until the
// test ends and returns "127.0.0.1:port".
func StartSec(t testing.TB, zone SecZone) string {
	t.Helper()
	for key, values := range zone.Records {
		for _, v := range values {
			if _, err := dns.NewRR(rrText(key, v)); err != nil {
				t.Fatalf("test zone: %s %s: %v", key, v, err)
			}
		}
	}
	pc, ln := Listen(t)
	handler := func(udp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			if zone.Questions != nil {
				select {
				case zone.Questions <- req.Copy():
				default:
				}
			}
			q := req.Question[0]
			name := strings.ToLower(q.Name)
			if zone.Drop[name] {
				return // no answer: the asker waits until its deadline
			}
			m := new(dns.Msg)
			m.SetReply(req)
			switch {
			case zone.ServFail[name]:
				m.Rcode = dns.RcodeServerFailure
			case zone.Refused[name]:
				m.Rcode = dns.RcodeRefused
			case zone.NXDomain[name]:
				m.Rcode = dns.RcodeNameError
			}
			secure := zone.Secure[name] || zone.Secure[name+" "+dns.TypeToString[q.Qtype]]
			m.AuthenticatedData = secure && m.Rcode != dns.RcodeServerFailure
			if m.Rcode == dns.RcodeSuccess {
				for _, v := range zone.Records[name+" "+dns.TypeToString[q.Qtype]] {
					if rr, err := dns.NewRR(rrText(q.Name+" "+dns.TypeToString[q.Qtype], v)); err == nil {
						m.Answer = append(m.Answer, rr) // StartSec checked every record
					}
				}
			}
			if udp && zone.Truncate && len(m.Answer) > 0 {
				m.Answer = nil
				m.Truncated = true
			}
			_ = w.WriteMsg(m)
		}
	}
	serve(t, pc, ln, handler(true), handler(false))
	return pc.LocalAddr().String()
}

// rrText is the record of a SecZone entry.
func rrText(key, value string) string {
	if whole, ok := strings.CutPrefix(value, "="); ok {
		return whole
	}
	return strings.Replace(key, " ", " 60 IN ", 1) + " " + value
}
