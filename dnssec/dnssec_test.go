package dnssec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
)

func TestQueryDNSSEC(t *testing.T) {
	questions := make(chan *dns.Msg, 100)
	zone := dnstest.SecZone{
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
	addr := dnstest.StartSec(t, zone)
	zone.Truncate = true
	truncAddr := dnstest.StartSec(t, zone)
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
		{name: "servfail", resolver: addr, qname: "bogus.test", wantErr: ErrServFail},
		{name: "refused", resolver: addr, qname: "refused.test", wantErrText: "REFUSED"},
		{name: "truncated over udp, whole over tcp", resolver: truncAddr, qname: "secure.test", wantAuth: true, wantAnswers: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			a, err := Query(ctx, tc.resolver, tc.qname, dns.TypeTXT)
			if tc.wantErr != nil || tc.wantErrText != "" {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("err = %v, want %v %q", err, tc.wantErr, tc.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Authenticated != tc.wantAuth || a.NXDomain() != tc.wantNX || len(a.Msg.Answer) != tc.wantAnswers {
				t.Errorf("authenticated %t nxdomain %t answers %d, want %t %t %d",
					a.Authenticated, a.NXDomain(), len(a.Msg.Answer), tc.wantAuth, tc.wantNX, tc.wantAnswers)
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
	_, err = Query(ctx, pc.LocalAddr().String(), "example.test", dns.TypeTLSA)
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
			got, err := ResolverAddr(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("ResolverAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	resolvConf = filepath.Join(dir, "missing")
	if _, err := ResolverAddr(""); err == nil {
		t.Error("a missing resolv.conf gave no error")
	}
}

func TestLookupMX(t *testing.T) {
	addr := dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			"secure.test. MX":   {"20 mx2.secure.test.", "10 MX1.Secure.Test."},
			"insecure.test. MX": {"10 mx.insecure.test."},
			"null.test. MX":     {"0 ."},
			"alias.test. MX":    {"=alias.test. 60 IN CNAME secure.test.", "=secure.test. 60 IN MX 10 mx1.secure.test."},
			"bad.test. MX":      {`10 bad\032name.test.`},
		},
		Secure:   map[string]bool{"secure.test.": true, "gone.test.": true, "nodata.test.": true, "null.test.": true},
		NXDomain: map[string]bool{"gone.test.": true, "nx.test.": true},
		ServFail: map[string]bool{"bogus.test.": true},
	})
	for _, tc := range []struct {
		name     string
		want     string // "pref host" joined by ", "
		wantAuth bool
		wantErr  string
	}{
		{name: "secure.test", want: "20 mx2.secure.test., 10 MX1.Secure.Test.", wantAuth: true},
		{name: "insecure.test", want: "10 mx.insecure.test."},
		{name: "null.test", want: "0 .", wantAuth: true},
		{name: "alias.test", want: "10 mx1.secure.test."},
		{name: "gone.test", wantAuth: true},   // authenticated denial: NXDOMAIN
		{name: "nodata.test", wantAuth: true}, // authenticated denial: NODATA
		{name: "nx.test"},
		{name: "bogus.test", wantErr: "SERVFAIL"},
		{name: "bad.test", wantErr: "invalid host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			mxs, auth, err := LookupMX(ctx, addr, tc.name)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.name) {
					t.Fatalf("err = %v, want one with %q naming %s", err, tc.wantErr, tc.name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mx := range mxs {
				got = append(got, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
			}
			if strings.Join(got, ", ") != tc.want || auth != tc.wantAuth {
				t.Errorf("MX %q authenticated %t, want %q %t", strings.Join(got, ", "), auth, tc.want, tc.wantAuth)
			}
		})
	}
}

// TestQuerySystemServersInOrder: with the system's resolver, a nameserver
// that cannot be reached, one that answers REFUSED and one that never
// answers do not fail the lookup while another answers: the next is asked,
// each within its share of the deadline, as the C library does.
func TestQuerySystemServersInOrder(t *testing.T) {
	answering := dnstest.StartSec(t, dnstest.SecZone{Records: map[string][]string{"mx.test. TXT": {`"hello"`}},
		Secure: map[string]bool{"mx.test.": true}})
	_, port, _ := net.SplitHostPort(answering)
	// The same port on other loopback addresses: 127.0.0.5 refuses (no
	// listener), 127.0.0.6 answers REFUSED, 127.0.0.7 never answers.
	refusing := startOn(t, "127.0.0.6:"+port, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		_ = w.WriteMsg(m)
	})
	silent := startOn(t, "127.0.0.7:"+port, func(dns.ResponseWriter, *dns.Msg) {})
	if refusing == nil || silent == nil {
		t.Skip("the port is taken on 127.0.0.6 or 127.0.0.7")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver 127.0.0.5\nnameserver 127.0.0.6\nnameserver 127.0.0.7\nnameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	oldConf, oldPort := resolvConf, systemPort
	resolvConf, systemPort = conf, port
	defer func() { resolvConf, systemPort = oldConf, oldPort }()
	// Had the silent server kept all the time left, the deadline would
	// pass before the fourth is asked.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	txt, err := LookupTXT(ctx, "", "mx.test")
	if err != nil || len(txt) != 1 || txt[0] != "hello" {
		t.Fatalf("LookupTXT = %q, %v; want the fourth server's answer", txt, err)
	}
}

// startOn serves handler over UDP on addr until the test ends; nil when
// addr cannot be bound.
func startOn(t *testing.T, addr string, handler dns.HandlerFunc) *dns.Server {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil
	}
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	// Closing the socket ends a server whose goroutine started after
	// Shutdown, which does nothing to a server not yet started.
	t.Cleanup(func() { _ = srv.Shutdown(); _ = pc.Close(); <-done })
	return srv
}
