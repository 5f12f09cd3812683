package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/policytest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

func TestParseMTASTSRecord(t *testing.T) {
	for _, tc := range []struct {
		in, wantID, wantErr string
	}{
		{in: "v=STSv1; id=20160831085700Z;", wantID: "20160831085700Z"},
		{in: "v=STSv1;id=abc", wantID: "abc"},
		{in: "v=STSv1; id=abc; ext_1=value", wantID: "abc"},
		{in: "v=STSv1;\tid=abc ;", wantID: "abc"},
		{in: "v=STSv2; id=abc", wantErr: "v=STSv1"},
		{in: "id=abc; v=STSv1", wantErr: "v=STSv1"},
		{in: "v=STSv1", wantErr: "no id"},
		{in: "v=STSv1; id=", wantErr: "key=value"},
		{in: "v=STSv1; id=abc-def", wantErr: "letters and digits"},
		{in: "v=STSv1; id=" + strings.Repeat("a", 33), wantErr: "letters and digits"},
		// RFC 8461 3.2's closing paragraph (for the record and the policy):
		// of a repeated field, the first counts and the others are ignored.
		{in: "v=STSv1; id=a; id=b", wantID: "a"},
		{in: "v=STSv1; id=first; ext=1; id=second; ext=2;", wantID: "first"},
		{in: "v=STSv1; id=a; v=STSv2", wantID: "a"},
		{in: "v=STSv1; ext=1; id=b", wantID: "b"},
		{in: "v=STSv1; id=a; id=a b", wantErr: "bad value"},
		{in: "v=STSv1; id=a;; x=y", wantErr: "key=value"},
		{in: "v=STSv1; id=a; -x=y", wantErr: "key=value"},
		{in: "v=STSv1; id=a; x=y z", wantErr: "bad value"},
		{in: "", wantErr: "key=value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			rec, err := ParseRecord(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || rec.ID != tc.wantID {
				t.Fatalf("got %+v, %v; want id %q", rec, err, tc.wantID)
			}
		})
	}
}

func TestParseMTASTSPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     *Policy
		wantErr  string
	}{
		{name: "rfc example", in: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			want: &Policy{Mode: "enforce", MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800}},
		{name: "lf and no final newline", in: "version: STSv1\nmode: testing\nmx: MX.Example.COM.\nmax_age: 86400",
			want: &Policy{Mode: "testing", MX: []string{"mx.example.com"}, MaxAge: 86400}},
		{name: "none without mx", in: "version: STSv1\nmode: none\nmax_age: 0\n", want: &Policy{Mode: "none", MaxAge: 0}},
		{name: "extension ignored", in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\nx-ext: anything at all\n",
			want: &Policy{Mode: "enforce", MX: []string{"a.example"}, MaxAge: 31557600}},
		// The grammar imposes no order (RFC 8461 3.2): version must be
		// present, not first.
		{name: "mode before version", in: "mode: enforce\nmx: a.example\nversion: STSv1\nmax_age: 1\n",
			want: &Policy{Mode: "enforce", MX: []string{"a.example"}, MaxAge: 1}},
		{name: "version last", in: "max_age: 86400\r\nmx: b.example\r\nmode: testing\r\nversion: STSv1\r\n",
			want: &Policy{Mode: "testing", MX: []string{"b.example"}, MaxAge: 86400}},
		{name: "no version", in: "mode: enforce\nmx: a.example\nmax_age: 1\n", wantErr: "no version"},
		{name: "other version", in: "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", wantErr: "not STSv1"},
		{name: "no mode", in: "version: STSv1\nmx: a.example\nmax_age: 1\n", wantErr: "no mode"},
		{name: "bad mode", in: "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", wantErr: "not enforce"},
		// A repeated field other than mx: the first counts, the others are
		// ignored (RFC 8461 3.2).
		{name: "mode twice", in: "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
			want: &Policy{Mode: "enforce", MX: []string{"a.example"}, MaxAge: 1}},
		{name: "max_age twice", in: "version: STSv1\nmode: testing\nmax_age: 600\nmx: a.example\nmax_age: 99999999999\n",
			want: &Policy{Mode: "testing", MX: []string{"a.example"}, MaxAge: 600}},
		{name: "version twice", in: "version: STSv1\nmode: none\nversion: STSv2\nmax_age: 0\n", want: &Policy{Mode: "none", MaxAge: 0}},
		{name: "first version counts", in: "version: STSv2\nversion: STSv1\nmode: none\nmax_age: 0\n", wantErr: "not STSv1"},
		{name: "first mode counts", in: "version: STSv1\nmode: sometimes\nmode: enforce\nmx: a.example\nmax_age: 1\n", wantErr: "not enforce"},
		{name: "repeated field still a key: value line", in: "version: STSv1\nmode: none\nmax_age: 0\nmode:\n", wantErr: "not \"key: value\""},
		{name: "no max_age", in: "version: STSv1\nmode: enforce\nmx: a.example\n", wantErr: "no max_age"},
		{name: "max_age too big", in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", wantErr: "not 0 to"},
		{name: "max_age negative", in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", wantErr: "not a number"},
		{name: "max_age huge", in: "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999999999999\n", wantErr: "not a number"},
		{name: "enforce without mx", in: "version: STSv1\nmode: enforce\nmax_age: 1\n", wantErr: "without any mx"},
		{name: "mx with two wildcards", in: "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", wantErr: "not a host name"},
		{name: "mx single label", in: "version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 1\n", wantErr: "not a host name"},
		{name: "mx with a port", in: "version: STSv1\nmode: enforce\nmx: a.example:25\nmax_age: 1\n", wantErr: "not a host name"},
		{name: "not key value", in: "version: STSv1\nmode enforce\n", wantErr: "not \"key: value\""},
		{name: "empty value", in: "version: STSv1\nmode:\n", wantErr: "not \"key: value\""},
		{name: "control character", in: "version: STSv1\nmode: enforce\nmx: a.example\x00\nmax_age: 1\n", wantErr: "control character"},
		{name: "html", in: "<html><body>not found</body></html>", wantErr: "not \"key: value\""},
		{name: "too big", in: "version: STSv1\nmode: none\nmax_age: 1\n" + strings.Repeat("x: y\n", MaxPolicySize/5+1), wantErr: "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(p) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", p, tc.want)
			}
		})
	}
}

func TestMTASTSMatches(t *testing.T) {
	p := &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com":   true,
		"MAIL.Example.Com.":  true,
		"mx1.example.net":    true,
		"MX1.EXAMPLE.NET.":   true,
		"example.net":        false, // the wildcard needs a label
		"a.b.example.net":    false, // and only one
		".example.net":       false,
		"mail.example.com.x": false,
		"xmail.example.com":  false,
		"":                   false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("Matches(%q) = %t, want %t", host, got, want)
		}
	}
	for _, tc := range []struct {
		mode     string
		host     string
		verified bool
		wantErr  string
	}{
		{ModeEnforce, "mail.example.com", true, ""},
		{ModeEnforce, "mail.example.org", true, "matches no mx pattern"},
		{ModeEnforce, "mx.example.net", false, "does not validate"},
		{ModeTesting, "mail.example.org", true, "matches no mx pattern"},
		{ModeNone, "mail.example.org", false, ""},
	} {
		p.Mode = tc.mode
		err := p.CheckMX(tc.host, tc.verified)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s CheckMX(%q, %t) = %v, want %q", tc.mode, tc.host, tc.verified, err, tc.wantErr)
		}
		if p.Enforced() != (tc.mode == ModeEnforce) {
			t.Errorf("mode %s: Enforced() = %t", tc.mode, p.Enforced())
		}
	}
}

const enforcePolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"

func TestLookupMTASTS(t *testing.T) {
	zone := func(txt ...string) string {
		recs := map[string][]string{"mta-sts.example.test. A": {"127.0.0.1"}}
		for _, s := range txt {
			recs["_mta-sts.example.test. TXT"] = append(recs["_mta-sts.example.test. TXT"], strconv.Quote(s))
		}
		return dnstest.StartSec(t, dnstest.SecZone{Records: recs})
	}
	good := zone("v=STSv1; id=20260101T000000;", "some other record")
	for _, tc := range []struct {
		name      string
		resolver  string
		handler   http.HandlerFunc
		untrusted bool
		check     func(string, netip.Addr) error
		timeout   time.Duration
		wantErr   string
		wantIs    error
		wantConns int32 // -1: do not care
	}{
		{name: "enforce policy", resolver: good, handler: policytest.Handler(enforcePolicy), wantConns: 1},
		{name: "no record", resolver: zone(), handler: policytest.Handler(enforcePolicy), wantIs: ErrNoPolicy},
		{name: "id twice, policy fields in another order", resolver: zone("v=STSv1; id=20260101T000000; id=20250101T000000;"),
			handler: policytest.Handler("mode: enforce\r\nmax_age: 86400\r\nmx: mx.example.test\r\nversion: STSv1\r\nmode: none\r\n"), wantConns: 1},
		{name: "two records", resolver: zone("v=STSv1; id=a", "v=STSv1; id=b"), handler: policytest.Handler(enforcePolicy), wantIs: ErrNoPolicy},
		{name: "invalid record", resolver: zone("v=STSv1; id=a-b"), handler: policytest.Handler(enforcePolicy), wantIs: ErrNoPolicy},
		{name: "redirect not followed", resolver: good, wantErr: "302", wantConns: 1,
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://mta-sts.example.test/elsewhere.txt", http.StatusFound)
			}},
		{name: "not found", resolver: good, handler: http.NotFound, wantErr: "404", wantConns: 1},
		{name: "not text/plain", resolver: good, wantErr: "not text/plain", wantConns: 1,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				fmt.Fprint(w, enforcePolicy)
			}},
		{name: "endless body", resolver: good, wantErr: "larger than", wantConns: 1,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				fmt.Fprint(w, enforcePolicy)
				for i := 0; i < MaxPolicySize/8+1; i++ {
					if _, err := fmt.Fprint(w, "x: yyyy\n"); err != nil {
						return
					}
				}
			}},
		{name: "invalid policy", resolver: good, handler: policytest.Handler("version: STSv1\nmode: enforce\n"), wantErr: "no max_age", wantConns: 1},
		{name: "untrusted certificate", resolver: good, handler: policytest.Handler(enforcePolicy), untrusted: true,
			wantErr: "certificate", wantConns: 1},
		{name: "address refused, nothing dialled", resolver: good, handler: policytest.Handler(enforcePolicy),
			check: func(host string, addr netip.Addr) error {
				return fmt.Errorf("%s (%s) is not allowed", host, addr)
			}, wantErr: "is not allowed", wantIs: ErrRefused, wantConns: 0},
		{name: "a server that never answers costs the deadline", resolver: good, timeout: 500 * time.Millisecond,
			handler: policytest.Silent, wantIs: context.DeadlineExceeded, wantConns: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := policytest.Start(t, tc.handler)
			opts := Options{Resolver: tc.resolver, CheckAddr: tc.check, Port: srv.Port}
			if !tc.untrusted {
				opts.TLSConfig = &tls.Config{RootCAs: srv.PKI.Pool}
			} else {
				opts.TLSConfig = &tls.Config{RootCAs: testpki.Valid(t, "mta-sts.example.test").Pool}
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			res, err := Lookup(ctx, "Example.Test.", opts)
			if d := time.Since(start); d > timeout+5*time.Second {
				t.Errorf("took %s with a timeout of %s", d, timeout)
			}
			if tc.wantConns >= 0 && srv.Conns.Load() != tc.wantConns {
				t.Errorf("the policy server saw %d connections, want %d", srv.Conns.Load(), tc.wantConns)
			}
			if tc.wantErr != "" || tc.wantIs != nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
					t.Fatalf("err = %v, want %q / %v", err, tc.wantErr, tc.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Record.ID != "20260101T000000" || res.Policy.Mode != ModeEnforce || res.Policy.MaxAge != 86400 ||
				!res.Policy.Matches("mx.example.test") || res.Policy.Matches("mx2.example.test") {
				t.Errorf("got record %+v policy %+v", res.Record, res.Policy)
			}
			if res.Addr != netip.MustParseAddr("127.0.0.1") || res.PolicyURL != "https://mta-sts.example.test/.well-known/mta-sts.txt" {
				t.Errorf("fetched %s from %s", res.PolicyURL, res.Addr)
			}
		})
	}
}

func FuzzParseMTASTSPolicy(f *testing.F) {
	f.Add([]byte(enforcePolicy))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 31557600\nx: y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone {
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxAge {
			t.Fatalf("max_age %d", p.MaxAge)
		}
		if len(p.MX) == 0 && p.Mode != ModeNone {
			t.Fatal("no mx")
		}
		for _, pat := range p.MX {
			if !validMXPattern(pat) {
				t.Fatalf("pattern %q", pat)
			}
			if host, ok := strings.CutPrefix(pat, "*."); ok {
				host = "x." + host
				if !p.Matches(host) {
					t.Fatalf("%q does not match %q", host, pat)
				}
			} else if !p.Matches(strings.ToUpper(pat) + ".") {
				t.Fatalf("%q does not match itself", pat)
			}
		}
	})
}

func FuzzParseMTASTSRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;x=y")
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := ParseRecord(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(strings.TrimLeft(s, " \t"), "v=STSv1") || rec.ID == "" || len(rec.ID) > 32 || !isAlnum(rec.ID) {
			t.Fatalf("%q gave %+v", s, rec)
		}
	})
}

// TestLookupErrorIsSafe: a policy server whose certificate names hold ESC
// and a newline (Go's hostname error quotes them as they are) cannot write
// them into the lookup's error, which reaches transcripts and reports.
func TestLookupErrorIsSafe(t *testing.T) {
	srv := policytest.StartWith(t, testpki.Valid(t, "evil\x1b[32m.example.test"), policytest.Handler(enforcePolicy))
	resolver := dnstest.StartSec(t, dnstest.SecZone{Records: map[string][]string{
		"mta-sts.example.test. A":    {"127.0.0.1"},
		"_mta-sts.example.test. TXT": {`"v=STSv1; id=1;"`},
	}})
	_, err := Lookup(t.Context(), "example.test", Options{Resolver: resolver, Port: srv.Port,
		TLSConfig: &tls.Config{RootCAs: srv.PKI.Pool}})
	if err == nil || errors.Is(err, ErrNoPolicy) {
		t.Fatalf("err = %v, want a failed fetch", err)
	}
	if strings.Contains(err.Error(), "\x1b") || !strings.Contains(err.Error(), `evil\x1b[32m`) {
		t.Errorf("err = %q, want the name escaped", err)
	}
}
