package smtp

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
)

// secZone is the data of a fake validating resolver: records by "name. TYPE"
// in presentation form ("_25._tcp.mx.example.test. TLSA" -> "3 1 1 ab..";
// a value beginning with "=" is a whole record, for CNAME chains:
// "=alias.test. 60 IN CNAME mx.test."),
// the names ("name." or "name. TYPE") whose answers carry the AD bit,
// names answering NXDOMAIN or
// SERVFAIL, and whether UDP answers are truncated (TC, no records).
type secZone struct {
	Records   map[string][]string
	Secure    map[string]bool
	NXDomain  map[string]bool
	ServFail  map[string]bool
	Refused   map[string]bool
	Truncate  bool
	Questions chan<- *dns.Msg // every query received, when not nil (never blocks)
}

// startSecDNS serves zone on 127.0.0.1 (UDP and TCP, one port) until the
// test ends and returns "127.0.0.1:port".
func startSecDNS(t *testing.T, zone secZone) string {
	t.Helper()
	for key, values := range zone.Records {
		for _, v := range values {
			if _, err := dns.NewRR(rrText(key, v)); err != nil {
				t.Fatalf("test zone: %s %s: %v", key, v, err)
			}
		}
	}
	pc, ln := dnstest.Listen(t)
	handler := func(udp bool) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			if zone.Questions != nil {
				select {
				case zone.Questions <- req.Copy():
				default:
				}
			}
			m := new(dns.Msg)
			m.SetReply(req)
			q := req.Question[0]
			name := strings.ToLower(q.Name)
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
						m.Answer = append(m.Answer, rr) // startSecDNS checked every record
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
	udp := &dns.Server{PacketConn: pc, Handler: handler(true)}
	tcp := &dns.Server{Listener: ln, Handler: handler(false)}
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{udp, tcp} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ActivateAndServe()
		}()
	}
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// rrText is the record of a secZone entry.
func rrText(key, value string) string {
	if whole, ok := strings.CutPrefix(value, "="); ok {
		return whole
	}
	return strings.Replace(key, " ", " 60 IN ", 1) + " " + value
}

func TestQueryDNSSEC(t *testing.T) {
	questions := make(chan *dns.Msg, 100)
	zone := secZone{
		Records: map[string][]string{
			"secure.test. TXT":   {`"hello"`},
			"insecure.test. TXT": {`"hello"`},
		},
		Secure:    map[string]bool{"secure.test.": true, "gone.test.": true},
		NXDomain:  map[string]bool{"gone.test.": true},
		ServFail:  map[string]bool{"bogus.test.": true},
		Refused:   map[string]bool{"refused.test.": true},
		Questions: questions,
	}
	addr := startSecDNS(t, zone)
	zone.Truncate = true
	truncAddr := startSecDNS(t, zone)
	for _, tc := range []struct {
		name, resolver, qname string
		wantAuth, wantNX      bool
		wantAnswers           int
		wantErr               error
		wantErrText           string
	}{
		{name: "authenticated", resolver: addr, qname: "secure.test", wantAuth: true, wantAnswers: 1},
		{name: "insecure", resolver: addr, qname: "insecure.test", wantAnswers: 1},
		{name: "authenticated nxdomain", resolver: addr, qname: "gone.test", wantAuth: true, wantNX: true},
		{name: "servfail", resolver: addr, qname: "bogus.test", wantErr: ErrDNSServFail},
		{name: "refused", resolver: addr, qname: "refused.test", wantErrText: "REFUSED"},
		{name: "truncated over udp, whole over tcp", resolver: truncAddr, qname: "secure.test", wantAuth: true, wantAnswers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, err := queryDNSSEC(ctx, tc.resolver, tc.qname, dns.TypeTXT)
			if tc.wantErr != nil || tc.wantErrText != "" {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("err = %v, want %v %q", err, tc.wantErr, tc.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Authenticated != tc.wantAuth || a.nxDomain() != tc.wantNX || len(a.Msg.Answer) != tc.wantAnswers {
				t.Errorf("authenticated %t nxdomain %t answers %d, want %t %t %d",
					a.Authenticated, a.nxDomain(), len(a.Msg.Answer), tc.wantAuth, tc.wantNX, tc.wantAnswers)
			}
		})
	}
	// Every query asked for DNSSEC: the DO bit in EDNS0 and the AD bit.
	n := 0
	for len(questions) > 0 {
		q := <-questions
		n++
		opt := q.IsEdns0()
		if opt == nil || !opt.Do() || !q.AuthenticatedData || !q.RecursionDesired {
			t.Errorf("query %s without DO, AD or RD: %v", q.Question[0].Name, q)
		}
	}
	if n < 7 { // six cases, the truncated one asked twice
		t.Errorf("the servers saw %d queries, want 7 or more", n)
	}
}

// TestQueryDNSSECDeadline: a resolver that never answers costs the
// context's deadline, not more, and the error says so.
func TestQueryDNSSECDeadline(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 512)
		if _, _, err := pc.ReadFrom(buf); err == nil {
			got <- struct{}{}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = queryDNSSEC(ctx, pc.LocalAddr().String(), "example.test", dns.TypeTLSA)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s past a 300ms deadline", d)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Error("the query never reached the server")
	}
}

func TestResolverAddr(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("# test\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions trust-ad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := resolvConf
	resolvConf = conf
	defer func() { resolvConf = old }()
	for _, tc := range []struct{ in, want string }{
		{"", "192.0.2.53:53"},
		{"127.0.0.1:5353", "127.0.0.1:5353"},
		{"127.0.0.1", "127.0.0.1:53"},
		{"::1", "[::1]:53"},
		{"[::1]", "[::1]:53"},
		{"[::1]:5353", "[::1]:5353"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := resolverAddr(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("resolverAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	resolvConf = filepath.Join(dir, "missing")
	if _, err := resolverAddr(""); err == nil {
		t.Error("a missing resolv.conf gave no error")
	}
}
