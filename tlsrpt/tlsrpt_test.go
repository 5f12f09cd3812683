package tlsrpt

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
)

func TestParseTLSRPTRecord(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantRUA []string
		wantErr string
	}{
		{in: "v=TLSRPTv1; rua=mailto:tlsrpt@example.org", wantRUA: []string{"mailto:tlsrpt@example.org"}},
		{in: "v=TLSRPTv1;rua=mailto:a@example.org,https://reports.example.org/v1;",
			wantRUA: []string{"mailto:a@example.org", "https://reports.example.org/v1"}},
		{in: "v=TLSRPTv1; rua=mailto:a@example.org!10m; ext=1", wantRUA: []string{"mailto:a@example.org!10m"}},
		{in: "v=TLSRPTv1", wantErr: "no rua"},
		{in: "v=TLSRPTv2; rua=mailto:a@example.org", wantErr: "v=TLSRPTv1"},
		{in: "rua=mailto:a@example.org; v=TLSRPTv1", wantErr: "v=TLSRPTv1"},
		{in: "v=TLSRPTv1; rua=http://reports.example.org/", wantErr: "not mailto or https"},
		{in: "v=TLSRPTv1; rua=mailto:", wantErr: "without an address"},
		{in: "v=TLSRPTv1; rua=mailto:@example.org", wantErr: "without an address"},
		{in: "v=TLSRPTv1; rua=https:///path", wantErr: "without a host"},
		// RFC 8460 3: tlsrpt-record = tlsrpt-version 1*(field-delim
		// tlsrpt-field), tlsrpt-field = tlsrpt-rua / tlsrpt-extension: rua
		// may appear more than once; every one is a report address.
		{in: "v=TLSRPTv1; rua=mailto:a@example.org; rua=mailto:b@example.org",
			wantRUA: []string{"mailto:a@example.org", "mailto:b@example.org"}},
		{in: "v=TLSRPTv1;rua=mailto:a@example.org,https://r.example.org/v1; ext=x; rua=mailto:c@example.org;",
			wantRUA: []string{"mailto:a@example.org", "https://r.example.org/v1", "mailto:c@example.org"}},
		{in: "v=TLSRPTv1; rua=mailto:a@example.org; rua=ftp://x", wantErr: "not mailto or https"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.org; v=TLSRPTv2", wantRUA: []string{"mailto:a@example.org"}},
		{in: "v=TLSRPTv1; rua=", wantErr: "key=value"},
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
			if err != nil || strings.Join(rec.RUA, " ") != strings.Join(tc.wantRUA, " ") {
				t.Fatalf("got %+v, %v; want rua %q", rec, err, tc.wantRUA)
			}
		})
	}
}

func TestLookupTLSRPT(t *testing.T) {
	quote := func(s ...string) []string {
		for i := range s {
			s[i] = strconv.Quote(s[i])
		}
		return s
	}
	addr := dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			"_smtp._tls.one.test. TXT":     quote("v=TLSRPTv1; rua=mailto:tlsrpt@one.test", "v=spf1 -all"),
			"_smtp._tls.two.test. TXT":     quote("v=TLSRPTv1; rua=mailto:a@two.test", "v=TLSRPTv1; rua=mailto:b@two.test"),
			"_smtp._tls.invalid.test. TXT": quote("v=TLSRPTv1; rua=ftp://x"),
			"_smtp._tls.split.test. TXT":   {`"v=TLSRPTv1; " "rua=mailto:tlsrpt@split.test"`},
		},
		ServFail: map[string]bool{"_smtp._tls.bogus.test.": true},
	})
	for _, tc := range []struct {
		domain      string
		wantRecord  bool
		wantRecords int
		wantErr     bool // Result.Err
		wantLookup  bool // the lookup failed
	}{
		{domain: "one.test", wantRecord: true, wantRecords: 1},
		{domain: "ONE.test.", wantRecord: true, wantRecords: 1},
		{domain: "split.test", wantRecord: true, wantRecords: 1},
		{domain: "none.test"},
		{domain: "two.test", wantRecords: 2, wantErr: true},
		{domain: "invalid.test", wantRecords: 1, wantErr: true},
		{domain: "bogus.test", wantLookup: true},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := Lookup(ctx, addr, tc.domain)
			if (err != nil) != tc.wantLookup {
				t.Fatalf("err = %v, want an error: %t", err, tc.wantLookup)
			}
			if (res.Record != nil) != tc.wantRecord || len(res.Records) != tc.wantRecords || (res.Err != nil) != tc.wantErr {
				t.Errorf("record %+v records %d err %v; want record %t, %d records, err %t",
					res.Record, len(res.Records), res.Err, tc.wantRecord, tc.wantRecords, tc.wantErr)
			}
		})
	}
}

func FuzzParseTLSRPTRecord(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:tlsrpt@example.org")
	f.Add("v=TLSRPTv1;rua=mailto:a@b,https://c/d;x=y")
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := ParseRecord(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(strings.TrimLeft(s, " \t"), "v=TLSRPTv1") || len(rec.RUA) == 0 {
			t.Fatalf("%q gave %+v", s, rec)
		}
		for _, u := range rec.RUA {
			if err := checkRUA(u); err != nil {
				t.Fatalf("%q gave rua %q: %v", s, u, err)
			}
		}
	})
}
