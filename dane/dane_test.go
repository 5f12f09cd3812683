package dane

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

func mustTLSA(t *testing.T, cert *x509.Certificate, usage, selector, matching uint8) TLSARecord {
	t.Helper()
	r, err := TLSAFor(cert, usage, selector, matching)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTLSARecordUsable(t *testing.T) {
	sha256Data, sha512Data := make([]byte, 32), make([]byte, 64)
	for _, tc := range []struct {
		rec  TLSARecord
		want bool
	}{
		{TLSARecord{3, 1, 1, sha256Data}, true},
		{TLSARecord{2, 0, 2, sha512Data}, true},
		{TLSARecord{3, 0, 0, []byte{0x30}}, true},
		{TLSARecord{0, 1, 1, sha256Data}, false}, // PKIX-TA
		{TLSARecord{1, 1, 1, sha256Data}, false}, // PKIX-EE
		{TLSARecord{4, 1, 1, sha256Data}, false},
		{TLSARecord{3, 2, 1, sha256Data}, false}, // unknown selector
		{TLSARecord{3, 1, 3, sha256Data}, false}, // unknown matching type
		{TLSARecord{3, 1, 1, sha512Data}, false}, // wrong length for SHA-256
		{TLSARecord{3, 1, 2, sha256Data}, false}, // wrong length for SHA-512
		{TLSARecord{3, 1, 0, nil}, false},        // empty full data
	} {
		t.Run(tc.rec.String(), func(t *testing.T) {
			if got := tc.rec.Usable(); got != tc.want {
				t.Errorf("Usable() = %t, want %t", got, tc.want)
			}
		})
	}
}

func TestVerifyDANE(t *testing.T) {
	const host = "mx.example.test"
	pki := testpki.Valid(t, host)
	other := testpki.Valid(t, host)                     // same name, other keys and CA
	wrongName := testpki.Valid(t, "other.example.test") // right shape, wrong name
	expired := testpki.New(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), host)
	cnOnly := testpki.NewNamed(t, host)                         // no subject alternative name
	cnAndSAN := testpki.NewNamed(t, host, "other.example.test") // CN ignored: there is a DNS-ID
	wildcard := testpki.Valid(t, "*.example.test")
	wildcardCN := testpki.NewNamed(t, "*.example.test")
	chain := []*x509.Certificate{pki.Leaf, pki.CA}
	var all []TLSARecord
	for _, sel := range []uint8{0, 1} {
		for _, mt := range []uint8{0, 1, 2} {
			all = append(all, mustTLSA(t, pki.Leaf, 3, sel, mt))
		}
	}
	pkixEE := mustTLSA(t, pki.Leaf, 1, 1, 1)
	for _, tc := range []struct {
		name      string
		records   []TLSARecord
		chain     []*x509.Certificate
		names     []string
		wantDepth int
		wantErr   string // empty: a match
	}{
		{name: "DANE-EE 3 0 0", records: all[0:1], chain: chain, names: []string{host}},
		{name: "DANE-EE 3 0 1", records: all[1:2], chain: chain, names: []string{host}},
		{name: "DANE-EE 3 0 2", records: all[2:3], chain: chain, names: []string{host}},
		{name: "DANE-EE 3 1 0", records: all[3:4], chain: chain, names: []string{host}},
		{name: "DANE-EE 3 1 1", records: all[4:5], chain: chain, names: []string{host}},
		{name: "DANE-EE 3 1 2", records: all[5:6], chain: chain, names: []string{host}},
		{name: "DANE-EE ignores the name", records: []TLSARecord{mustTLSA(t, wrongName.Leaf, 3, 1, 1)},
			chain: []*x509.Certificate{wrongName.Leaf}, names: []string{host}},
		{name: "DANE-EE ignores expiry", records: []TLSARecord{mustTLSA(t, expired.Leaf, 3, 1, 1)},
			chain: []*x509.Certificate{expired.Leaf, expired.CA}, names: []string{host}},
		{name: "DANE-EE after a record that does not match", records: []TLSARecord{mustTLSA(t, other.Leaf, 3, 1, 1), all[4]},
			chain: chain, names: []string{host}},
		{name: "DANE-EE of another key", records: []TLSARecord{mustTLSA(t, other.Leaf, 3, 1, 1)},
			chain: chain, names: []string{host}, wantErr: "1 usable records"},
		{name: "DANE-EE does not match the CA", records: []TLSARecord{mustTLSA(t, pki.CA, 3, 1, 1)},
			chain: chain, names: []string{host}, wantErr: "matches no usable"},
		{name: "DANE-TA of the CA", records: []TLSARecord{mustTLSA(t, pki.CA, 2, 1, 1)},
			chain: chain, names: []string{host}, wantDepth: 1},
		{name: "DANE-TA of the whole CA certificate", records: []TLSARecord{mustTLSA(t, pki.CA, 2, 0, 0)},
			chain: chain, names: []string{"example.test", host + "."}, wantDepth: 1},
		{name: "DANE-TA with the wrong name", records: []TLSARecord{mustTLSA(t, wrongName.CA, 2, 1, 1)},
			chain: []*x509.Certificate{wrongName.Leaf, wrongName.CA}, names: []string{host}, wantErr: "name check"},
		{name: "DANE-TA without a name", records: []TLSARecord{mustTLSA(t, pki.CA, 2, 1, 1)},
			chain: chain, wantErr: "no name"},
		// RFC 7672 3.2.2: the CN-ID counts only when there is no DNS-ID;
		// wildcards stand for the whole leftmost label, in either.
		{name: "DANE-TA, a leaf named by its CN alone", records: []TLSARecord{mustTLSA(t, cnOnly.CA, 2, 1, 1)},
			chain: []*x509.Certificate{cnOnly.Leaf, cnOnly.CA}, names: []string{"example.test", host}, wantDepth: 1},
		{name: "DANE-TA, a leaf named by its CN alone, another name", records: []TLSARecord{mustTLSA(t, cnOnly.CA, 2, 1, 1)},
			chain: []*x509.Certificate{cnOnly.Leaf, cnOnly.CA}, names: []string{"other.example.test"}, wantErr: "name check"},
		{name: "DANE-TA, the CN is ignored beside a DNS name", records: []TLSARecord{mustTLSA(t, cnAndSAN.CA, 2, 1, 1)},
			chain: []*x509.Certificate{cnAndSAN.Leaf, cnAndSAN.CA}, names: []string{host}, wantErr: "name check"},
		{name: "DANE-TA, a wildcard DNS name", records: []TLSARecord{mustTLSA(t, wildcard.CA, 2, 1, 1)},
			chain: []*x509.Certificate{wildcard.Leaf, wildcard.CA}, names: []string{host}, wantDepth: 1},
		{name: "DANE-TA, a wildcard CN", records: []TLSARecord{mustTLSA(t, wildcardCN.CA, 2, 1, 1)},
			chain: []*x509.Certificate{wildcardCN.Leaf, wildcardCN.CA}, names: []string{"MX.Example.Test."}, wantDepth: 1},
		{name: "DANE-TA, a wildcard is one label", records: []TLSARecord{mustTLSA(t, wildcard.CA, 2, 1, 1)},
			chain: []*x509.Certificate{wildcard.Leaf, wildcard.CA}, names: []string{"a.mx.example.test", "example.test"}, wantErr: "name check"},
		{name: "DANE-TA with an expired leaf", records: []TLSARecord{mustTLSA(t, expired.CA, 2, 1, 1)},
			chain: []*x509.Certificate{expired.Leaf, expired.CA}, names: []string{host}, wantErr: "chain"},
		{name: "DANE-TA whose CA did not sign the leaf", records: []TLSARecord{mustTLSA(t, other.CA, 2, 1, 1)},
			chain: []*x509.Certificate{pki.Leaf, other.CA}, names: []string{host}, wantErr: "chain"},
		{name: "DANE-TA of a CA not in the chain", records: []TLSARecord{mustTLSA(t, other.CA, 2, 1, 1)},
			chain: chain, names: []string{host}, wantErr: "1 usable records"},
		{name: "PKIX-EE is not usable", records: []TLSARecord{pkixEE}, chain: chain, names: []string{host},
			wantErr: "none of the 1 records is usable"},
		{name: "no certificate", records: all, wantErr: "no certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Verify(tc.records, tc.chain, tc.names)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				if tc.chain != nil && !errors.Is(err, ErrMismatch) {
					t.Errorf("err = %v does not wrap ErrMismatch", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Depth != tc.wantDepth {
				t.Errorf("matched at depth %d, want %d", m.Depth, tc.wantDepth)
			}
		})
	}
}

// TestReferenceNames checks the names a DANE-TA chain's leaf may carry
// (RFC 7672 3.2.2): the TLSA base domain, the MX host name it was expanded
// from, and the next-hop domain: the recipient domain whose MX records led
// to the host, or the host itself for a target that is not a domain.
func TestReferenceNames(t *testing.T) {
	recipientOnly := testpki.Valid(t, "example.test")
	chain := []*x509.Certificate{recipientOnly.Leaf, recipientOnly.CA}
	for _, tc := range []struct {
		host, base, nextHop string
		want                string
		verifies            bool
	}{
		{host: "mx.example.test", base: "mx.example.test", nextHop: "mx.example.test", want: "mx.example.test"},
		{host: "mx.example.test", base: "mx.example.test", nextHop: "Example.Test.", want: "mx.example.test example.test", verifies: true},
		{host: "mx.example.test", base: "mx.provider.test", nextHop: "example.test",
			want: "mx.provider.test mx.example.test example.test", verifies: true},
		{host: "mx.example.test", base: "mx.provider.test", nextHop: "", want: "mx.provider.test mx.example.test"},
	} {
		t.Run(tc.host+" "+tc.base+" "+tc.nextHop, func(t *testing.T) {
			r := &TLSAResult{Host: tc.host, BaseDomain: tc.base, HostAuthenticated: true, Authenticated: true,
				Records: []TLSARecord{mustTLSA(t, recipientOnly.CA, 2, 1, 1)}}
			if got := strings.Join(r.ReferenceNames(tc.nextHop), " "); got != tc.want {
				t.Errorf("reference names %q, want %q", got, tc.want)
			}
			if _, err := r.Verify(chain, tc.nextHop); (err == nil) != tc.verifies {
				t.Errorf("a leaf issued to example.test only: %v, want verified %t", err, tc.verifies)
			}
		})
	}
}

// TestTLSAForMatchesPresentation checks TLSAFor against the presentation
// form a zone file would hold, parsed by the lookup's own path.
func TestTLSAForMatchesPresentation(t *testing.T) {
	pki := testpki.Valid(t, "mx.example.test")
	r := mustTLSA(t, pki.Leaf, 3, 1, 1)
	want := fmt.Sprintf("3 1 1 %x", r.Data)
	if r.String() != want {
		t.Errorf("String() = %q, want %q", r.String(), want)
	}
	if _, err := TLSAFor(pki.Leaf, 3, 2, 1); err == nil {
		t.Error("selector 2 accepted")
	}
	if _, err := TLSAFor(pki.Leaf, 3, 1, 3); err == nil {
		t.Error("matching type 3 accepted")
	}
}

func TestLookupTLSA(t *testing.T) {
	pki := testpki.Valid(t, "mx.example.test")
	other := testpki.Valid(t, "mx.example.test")
	ee := mustTLSA(t, pki.Leaf, 3, 1, 1)
	ta := mustTLSA(t, pki.CA, 2, 1, 1)
	pkix := mustTLSA(t, pki.Leaf, 1, 1, 1)
	wrong := mustTLSA(t, other.Leaf, 3, 1, 1)
	secure := map[string]bool{}
	for _, n := range []string{"mx.secure.test.", "mx.pkix.test.", "mx.nodata.test.", "mx.gone.test.", "mx.bogus.test.",
		"alias.secure.test.", "alias2.secure.test.", "split.secure.test.",
		"_25._tcp.mx.secure.test.", "_25._tcp.mx.pkix.test.", "_465._tcp.mx.secure.test.", "_25._tcp.mx.nodata.test.",
		"_25._tcp.mx.gone.test.", "_25._tcp.target.secure.test.", "_25._tcp.alias2.secure.test.", "_25._tcp.empty.secure.test.",
		"_25._tcp.insecure-alias.secure.test.", "_25._tcp.mx.insecure-addr.test.", "_25._tcp.target.insecure.test.",
		"_25._tcp.split.secure.test."} {
		secure[n] = true
	}
	a := func(host string) string { return host + " A" }
	questions := make(chan *dns.Msg, 64)
	addr := dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			a("mx.secure.test."): {"192.0.2.1"}, a("mx.insecure.test."): {"192.0.2.1"}, a("mx.pkix.test."): {"192.0.2.1"},
			a("mx.nodata.test."): {"192.0.2.1"}, a("mx.insecure-addr.test."): {"192.0.2.1"},
			a("mx.servfail.insecure.test."): {"192.0.2.1"}, a("mx.refused.insecure.test."): {"192.0.2.1"},
			a("mx.dead.insecure.test."):                 {"192.0.2.1"},
			a("alias.secure.test."):                     {"=alias.secure.test. 60 IN CNAME target.secure.test.", "=target.secure.test. 60 IN A 192.0.2.1"},
			a("alias2.secure.test."):                    {"=alias2.secure.test. 60 IN CNAME empty.secure.test.", "=empty.secure.test. 60 IN A 192.0.2.1"},
			a("insecure-alias.secure.test."):            {"=insecure-alias.secure.test. 60 IN CNAME target.insecure.test.", "=target.insecure.test. 60 IN A 192.0.2.1"},
			a("split.secure.test."):                     {"=split.secure.test. 60 IN CNAME split-target.secure.test.", "=split-target.secure.test. 60 IN A 192.0.2.1"},
			"_25._tcp.mx.secure.test. TLSA":             {ee.String(), ta.String()},
			"_25._tcp.mx.insecure.test. TLSA":           {ee.String()},
			"_25._tcp.mx.pkix.test. TLSA":               {pkix.String()},
			"_465._tcp.mx.secure.test. TLSA":            {ee.String()},
			"_25._tcp.mx.nx-insecure.test. A":           {"192.0.2.1"},
			"_25._tcp.target.secure.test. TLSA":         {ta.String()},
			"_25._tcp.alias2.secure.test. TLSA":         {ee.String()},
			"_25._tcp.insecure-alias.secure.test. TLSA": {ee.String()},
			"_25._tcp.target.insecure.test. TLSA":       {ta.String()},
			"_25._tcp.mx.insecure-addr.test. TLSA":      {ee.String()},
			// The expanded name's records are not authenticated (its
			// _tcp label sits behind an insecure delegation, say); the
			// alias's own, authenticated, must not be hidden by them.
			"_25._tcp.split-target.secure.test. TLSA": {wrong.String()},
			"_25._tcp.split.secure.test. TLSA":        {ee.String()},
		},
		Secure:   secure,
		NXDomain: map[string]bool{"_25._tcp.mx.gone.test.": true, "_25._tcp.mx.nx-insecure.test.": true},
		ServFail: map[string]bool{"_25._tcp.mx.bogus.test.": true, "mx.bogus-addr.test.": true,
			"_25._tcp.mx.servfail.insecure.test.": true},
		Refused:   map[string]bool{"_25._tcp.mx.refused.insecure.test.": true},
		Drop:      map[string]bool{"_25._tcp.mx.dead.insecure.test.": true},
		Questions: questions,
	})
	for _, tc := range []struct {
		host                 string
		port                 uint16
		wantBase             string
		wantRecords, usable  int
		wantHostAuth         bool
		wantAuth, wantDenied bool
		wantApplies          bool
		wantFirst            TLSARecord
		wantErr              error
		noTLSAQuery          bool // the host is insecure: its TLSA records are not asked for (RFC 7672 2.2)
	}{
		{host: "mx.secure.test", port: 25, wantRecords: 2, usable: 2, wantHostAuth: true, wantAuth: true, wantApplies: true, wantFirst: ee},
		{host: "MX.Secure.Test.", port: 25, wantBase: "mx.secure.test", wantRecords: 2, usable: 2, wantHostAuth: true, wantAuth: true, wantApplies: true, wantFirst: ee},
		{host: "mx.secure.test", port: 465, wantRecords: 1, usable: 1, wantHostAuth: true, wantAuth: true, wantApplies: true, wantFirst: ee},
		{host: "mx.insecure.test", port: 25, noTLSAQuery: true},
		{host: "mx.insecure-addr.test", port: 25, noTLSAQuery: true},
		{host: "mx.pkix.test", port: 25, wantRecords: 1, usable: 0, wantHostAuth: true, wantAuth: true},
		{host: "mx.nodata.test", port: 25, wantHostAuth: true, wantAuth: true, wantDenied: true},
		{host: "mx.gone.test", port: 25, wantHostAuth: true, wantAuth: true, wantDenied: true},
		{host: "mx.nx-insecure.test", port: 25, noTLSAQuery: true},
		{host: "alias.secure.test", port: 25, wantBase: "target.secure.test", wantRecords: 1, usable: 1, wantHostAuth: true,
			wantAuth: true, wantApplies: true, wantFirst: ta},
		{host: "alias2.secure.test", port: 25, wantRecords: 1, usable: 1, wantHostAuth: true, wantAuth: true, wantApplies: true, wantFirst: ee},
		{host: "insecure-alias.secure.test", port: 25, noTLSAQuery: true},
		{host: "split.secure.test", port: 25, wantRecords: 1, usable: 1, wantHostAuth: true, wantAuth: true, wantApplies: true, wantFirst: ee},
		{host: "mx.bogus.test", port: 25, wantErr: dnssec.ErrServFail},
		{host: "mx.bogus-addr.test", port: 25, wantErr: dnssec.ErrServFail},
		// A broken nameserver for the TLSA names of an insecure host is
		// never asked: DANE does not apply to it.
		{host: "mx.servfail.insecure.test", port: 25, noTLSAQuery: true},
		{host: "mx.refused.insecure.test", port: 25, noTLSAQuery: true},
		{host: "mx.dead.insecure.test", port: 25, noTLSAQuery: true},
	} {
		t.Run(fmt.Sprintf("%s:%d", tc.host, tc.port), func(t *testing.T) {
			for len(questions) > 0 {
				<-questions
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			res, err := LookupTLSA(ctx, addr, tc.host, tc.port)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Resolver != addr {
				t.Errorf("resolver %q, want %q", res.Resolver, addr)
			}
			for len(questions) > 0 {
				if q := <-questions; q.Question[0].Qtype == dns.TypeTLSA && tc.noTLSAQuery {
					t.Errorf("asked %s TLSA for an insecure host", q.Question[0].Name)
				}
			}
			base := tc.wantBase
			if base == "" {
				base = strings.ToLower(strings.TrimSuffix(tc.host, "."))
			}
			if want := TLSAName(base, tc.port); res.Name != want || res.BaseDomain != base {
				t.Errorf("name %q base %q, want %q %q", res.Name, res.BaseDomain, want, base)
			}
			if len(res.Records) != tc.wantRecords || len(res.Usable()) != tc.usable || res.HostAuthenticated != tc.wantHostAuth ||
				res.Authenticated != tc.wantAuth || res.Denied != tc.wantDenied || res.Applies() != tc.wantApplies {
				t.Errorf("records %d usable %d host authenticated %t authenticated %t denied %t applies %t; want %d %d %t %t %t %t",
					len(res.Records), len(res.Usable()), res.HostAuthenticated, res.Authenticated, res.Denied, res.Applies(),
					tc.wantRecords, tc.usable, tc.wantHostAuth, tc.wantAuth, tc.wantDenied, tc.wantApplies)
			}
			if tc.usable > 0 && res.Usable()[0].String() != tc.wantFirst.String() {
				t.Errorf("first usable record %s, want %s", res.Usable()[0], tc.wantFirst)
			}
		})
	}
}
