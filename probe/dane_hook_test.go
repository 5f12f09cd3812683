package probe

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// starttlsScript is a server that offers STARTTLS with cfg and says goodbye.
func starttlsScript(cfg *tls.Config) func(c *smtptest.Conn) error {
	return smtptest.Script(cfg,
		"S: 220 mx.dane.test ESMTP",
		"C: EHLO probe.test",
		"S: 250-mx.dane.test\n250 STARTTLS",
		"C: STARTTLS",
		"S: 220 go ahead",
		"TLS",
		"C: EHLO probe.test",
		"S: 250 mx.dane.test",
		"C: QUIT",
		"S: 221 bye")
}

// tlsaText is a TLSA record's data for a dnstest.SecZone.
func tlsaText(r dane.TLSARecord) string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

func TestProbeDANE(t *testing.T) {
	pki := testpki.Valid(t, "mx.dane.test")
	other := testpki.Valid(t, "mx.dane.test")
	starttls := smtptest.NewFake(t, "tcp4", starttlsScript(pki.Server))
	plain := smtptest.NewFake(t, "tcp4", smtptest.Script(nil,
		"S: 220 mx.dane.test ESMTP",
		"C: EHLO probe.test",
		"S: 250-mx.dane.test\n250 PIPELINING",
		"C: QUIT",
		"S: 221 bye"))
	tlsaAt := func(port uint16) string { return fmt.Sprintf("_%d._tcp.mx.dane.test. TLSA", port) }
	ee := tlsaText(mustTLSA(t, pki.Leaf, dane.TLSAUsageDANEEE))
	ta := tlsaText(mustTLSA(t, pki.CA, dane.TLSAUsageDANETA))
	wrong := tlsaText(mustTLSA(t, other.Leaf, dane.TLSAUsageDANEEE))
	pkixEE := tlsaText(mustTLSA(t, pki.Leaf, dane.TLSAUsagePKIXEE))
	zone := func(secure bool, srv *smtptest.Fake, tlsa ...string) dnstest.SecZone {
		z := dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}, tlsaAt(srv.Port): tlsa}}
		if secure {
			z.Secure = map[string]bool{"mx.dane.test.": true, dns.Fqdn(strings.TrimSuffix(tlsaAt(srv.Port), " TLSA")): true}
		}
		return z
	}

	for _, tc := range []struct {
		name       string
		zone       dnstest.SecZone
		srv        *smtptest.Fake
		roots      bool // trust pki's CA (WebPKI verifies)
		wantReason smtp.Reason
		wantPhase  smtp.Phase
		applies    bool
		verified   bool
		noDANE     bool // smtp.Result.DANE is nil (the lookup was not made)
		wantQUIT   bool
		dialled    bool
	}{
		{name: "DANE-EE matches: verified without WebPKI", zone: zone(true, starttls, ee), srv: starttls,
			applies: true, verified: true, wantQUIT: true, dialled: true},
		{name: "DANE-TA matches the chain and the name", zone: zone(true, starttls, ta), srv: starttls,
			applies: true, verified: true, wantQUIT: true, dialled: true},
		{name: "mismatch fails with reason dane, QUIT still sent", zone: zone(true, starttls, wrong), srv: starttls, roots: true,
			applies: true, wantPhase: smtp.PhaseStartTLS, wantReason: ReasonDANE, wantQUIT: true, dialled: true},
		{name: "no STARTTLS where DANE applies", zone: zone(true, plain, ee), srv: plain,
			applies: true, wantPhase: smtp.PhaseStartTLS, wantReason: ReasonDANE, wantQUIT: true, dialled: true},
		{name: "not authenticated: DANE does not apply, WebPKI decides (fails)", zone: zone(false, starttls, wrong), srv: starttls,
			wantPhase: smtp.PhaseStartTLS, wantReason: smtp.ReasonTLS, dialled: true},
		{name: "not authenticated: DANE does not apply, WebPKI decides (passes)", zone: zone(false, starttls, wrong), srv: starttls,
			roots: true, wantQUIT: true, dialled: true},
		// RFC 7672 2.2: a secure TLSA RRset of unusable records still makes
		// TLS mandatory (Postfix falls back to "encrypt", mox requires
		// STARTTLS); with TLS, WebPKI judges as the module says.
		{name: "only unusable records: no STARTTLS fails with reason dane", zone: zone(true, plain, pkixEE), srv: plain,
			wantPhase: smtp.PhaseStartTLS, wantReason: ReasonDANE, wantQUIT: true, dialled: true},
		{name: "only unusable records: STARTTLS, WebPKI decides (passes)", zone: zone(true, starttls, pkixEE), srv: starttls,
			roots: true, wantQUIT: true, dialled: true},
		{name: "only unusable records: STARTTLS, WebPKI decides (fails)", zone: zone(true, starttls, pkixEE), srv: starttls,
			wantPhase: smtp.PhaseStartTLS, wantReason: smtp.ReasonTLS, dialled: true},
		{name: "authenticated denial: DANE does not apply", zone: zone(true, starttls), srv: starttls, roots: true,
			wantQUIT: true, dialled: true},
		{name: "secure host, bogus TLSA (SERVFAIL): fails in resolve, nothing dialled", srv: starttls,
			zone: dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}},
				Secure:   map[string]bool{"mx.dane.test.": true},
				ServFail: map[string]bool{strings.TrimSuffix(tlsaAt(starttls.Port), " TLSA"): true}},
			wantPhase: smtp.PhaseResolve, wantReason: ReasonDANE},
		// RFC 7672 2.2: no TLSA lookup for a host whose address is not
		// authenticated, so a nameserver that fails for its _25._tcp name
		// (common for unsigned zones) fails nothing: DANE does not apply.
		{name: "insecure host, TLSA name SERVFAIL: not asked, WebPKI decides", srv: starttls, roots: true, wantQUIT: true, dialled: true,
			zone: dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}},
				ServFail: map[string]bool{strings.TrimSuffix(tlsaAt(starttls.Port), " TLSA"): true}}},
		{name: "insecure host, TLSA name REFUSED: not asked, WebPKI decides", srv: starttls, roots: true, wantQUIT: true, dialled: true,
			zone: dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}},
				Refused: map[string]bool{strings.TrimSuffix(tlsaAt(starttls.Port), " TLSA"): true}}},
		{name: "insecure host, TLSA name never answered: not asked, WebPKI decides", srv: starttls, roots: true, wantQUIT: true, dialled: true,
			zone: dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}},
				Drop: map[string]bool{strings.TrimSuffix(tlsaAt(starttls.Port), " TLSA"): true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			questions := make(chan *dns.Msg, 16)
			tc.zone.Questions = questions
			opts := baseOptions()
			opts.TLS, opts.DANE = smtp.TLSStartTLS, true
			opts.Resolver = dnstest.StartSec(t, tc.zone)
			opts.TLSConfig = &tls.Config{}
			if tc.roots {
				opts.TLSConfig.RootCAs = pki.Pool
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, resDANE, err := probeOne(ctx, "mx.dane.test", tc.srv.Port, opts)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("probe failed: %v", err)
				}
			} else if res.Err == nil || res.Err.Reason != tc.wantReason || res.Err.Phase != tc.wantPhase {
				t.Fatalf("err %v, want phase %s reason %s", res.Err, tc.wantPhase, tc.wantReason)
			}
			d := resDANE
			if d == nil {
				t.Fatal("no DANE result")
			}
			if !d.TLSA.HostAuthenticated {
				for range len(questions) {
					if q := <-questions; q.Question[0].Qtype == dns.TypeTLSA {
						t.Errorf("asked %s for a host whose address is not authenticated", q.Question[0].Name)
					}
				}
			}
			if d.Applies() != tc.applies {
				t.Errorf("applies %t, want %t (%+v)", d.Applies(), tc.applies, d.TLSA)
			}
			verified, present := d.Verified()
			if present != tc.applies || verified != tc.verified {
				t.Errorf("verified %t (present %t), want %t (%t): %v", verified, present, tc.verified, tc.applies, d.VerifyErr)
			}
			if tc.verified && (res.TLS == nil || res.TLS.Verified || res.TLS.VerifyError == nil) {
				t.Errorf("WebPKI should have been recorded as failing (no roots): %+v", res.TLS)
			}
			if !tc.dialled {
				if phases(res) != "resolve" {
					t.Errorf("phases %q, want resolve only", phases(res))
				}
				return
			}
			got := tc.srv.Wait(t)
			if strings.Contains(got.Recv, "QUIT") != tc.wantQUIT {
				t.Errorf("QUIT sent: %t, want %t; client sent %q", !tc.wantQUIT, tc.wantQUIT, got.Recv)
			}
		})
	}
	t.Run("connection refused where DANE applies: no verdict", func(t *testing.T) {
		_, portStr, _ := strings.Cut(testenv.FreeAddr(t), ":")
		var port uint16
		fmt.Sscan(portStr, &port)
		opts := baseOptions()
		opts.TLS, opts.DANE = smtp.TLSStartTLS, true
		opts.Resolver = dnstest.StartSec(t, dnstest.SecZone{
			Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}, tlsaAt(port): {ee}},
			Secure:  map[string]bool{"mx.dane.test.": true, strings.TrimSuffix(tlsaAt(port), " TLSA"): true},
		})
		res, resDANE, _ := probeOne(t.Context(), "mx.dane.test", port, opts)
		if res.Err == nil || res.Err.Reason != smtp.ReasonConnect || !resDANE.Applies() {
			t.Fatalf("err %v, DANE %+v: want a connect failure where DANE applies", res.Err, resDANE)
		}
		if _, present := resDANE.Verified(); present {
			t.Errorf("verified is present although no certificate was seen")
		}
	})
	t.Run("TLS none: no lookup", func(t *testing.T) {
		questions := make(chan *dns.Msg, 16)
		z := zone(true, plain, ee)
		z.Questions = questions
		opts := baseOptions()
		opts.DANE, opts.Resolver = true, dnstest.StartSec(t, z)
		_, resDANE, err := probeOne(t.Context(), "mx.dane.test", plain.Port, opts)
		plain.Wait(t)
		if err != nil || resDANE != nil {
			t.Fatalf("err %v, DANE %+v", err, resDANE)
		}
		for range len(questions) {
			if q := <-questions; q.Question[0].Qtype == dns.TypeTLSA {
				t.Errorf("asked %s with TLS none", q.Question[0].Name)
			}
		}
	})
	t.Run("an IP literal: DANE does not apply", func(t *testing.T) {
		opts := baseOptions()
		opts.TLS, opts.DANE = smtp.TLSStartTLS, true
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
		opts.Resolver = dnstest.StartSec(t, zone(true, starttls, wrong))
		_, resDANE, err := probeOne(t.Context(), "127.0.0.1", starttls.Port, opts)
		starttls.Wait(t)
		if err != nil || resDANE != nil {
			t.Fatalf("err %v, DANE %+v", err, resDANE)
		}
	})
}

// TestProbeHostDANEOneLookup checks that the addresses of one host share its
// TLSA lookup, and that each address's certificate is judged on its own.
func TestProbeHostDANEOneLookup(t *testing.T) {
	pki := testpki.Valid(t, "mx.dane.test")
	// Two servers on one port: 127.0.0.1 with the certificate the TLSA
	// record names, 127.0.0.2 with another key.
	var srvA, srvB *smtptest.Fake
	for try := 0; srvB == nil; try++ {
		srvA = smtptest.NewFake(t, "tcp4", starttlsScript(pki.Server))
		var err error
		srvB, err = smtptest.NewFakeOn(t, fmt.Sprintf("127.0.0.2:%d", srvA.Port), starttlsScript(testpki.Valid(t, "mx.dane.test").Server))
		if err != nil && try == 20 {
			t.Fatalf("no port free on 127.0.0.1 and 127.0.0.2: %v", err)
		}
	}
	port := srvA.Port
	questions := make(chan *dns.Msg, 64)
	name := fmt.Sprintf("_%d._tcp.mx.dane.test.", port)
	resolver := dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			"mx.dane.test. A": {"127.0.0.1", "127.0.0.2"},
			name + " TLSA":    {tlsaText(mustTLSA(t, pki.Leaf, dane.TLSAUsageDANEEE))},
		},
		Secure:    map[string]bool{"mx.dane.test.": true, name: true},
		Questions: questions,
	})
	opts := baseOptions()
	opts.TLS, opts.DANE, opts.AllAddresses, opts.Resolver = smtp.TLSStartTLS, true, true, resolver
	results, danes, perr := probeHostWith(t.Context(), "mx.dane.test", port, opts)
	srvA.Wait(t)
	srvB.Wait(t)
	if perr != nil || len(results) != 2 {
		t.Fatalf("results %v, err %v", results, perr)
	}
	if !results[0].Success() || results[1].Err == nil || results[1].Err.Reason != ReasonDANE {
		t.Errorf("127.0.0.1: %v (want success); 127.0.0.2: %v (want dane)", results[0].Err, results[1].Err)
	}
	if danes[0] == danes[1] || danes[0].TLSA != danes[1].TLSA {
		t.Errorf("the addresses should have their own DANEResult on one TLSA lookup")
	}
	n := 0
	for range len(questions) {
		if q := <-questions; q.Question[0].Qtype == dns.TypeTLSA {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d TLSA questions, want 1", n)
	}
	if !errors.Is(results[1].Err, dane.ErrMismatch) {
		t.Errorf("err %v does not wrap dane.ErrMismatch", results[1].Err)
	}
}

// sniRecorder is a server TLS config that reports the SNI of every
// ClientHello on its channel.
func sniRecorder(cfg *tls.Config) (*tls.Config, chan string) {
	got := make(chan string, 8)
	c := cfg.Clone()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case got <- hello.ServerName:
		default:
		}
		return nil, nil
	}
	return c, got
}

// TestProbeDANESNI checks the name sent as SNI: the TLSA base domain when
// DANE applies (RFC 7672 8.1: the CNAME-expanded MX host when the expansion
// is secure and has the records), else the module's name as before.
func TestProbeDANESNI(t *testing.T) {
	pki := testpki.Valid(t, "mx.dane.test")
	cfg, sni := sniRecorder(pki.Server)
	srv := smtptest.NewFake(t, "tcp4", starttlsScript(cfg))
	port := srv.Port
	ee := tlsaText(mustTLSA(t, pki.Leaf, dane.TLSAUsageDANEEE))
	at := func(host string) string { return fmt.Sprintf("_%d._tcp.%s.", port, host) }
	alias := []string{"=alias.dane.test. 60 IN CNAME mx.dane.test.", "=mx.dane.test. 60 IN A 127.0.0.1"}
	for _, tc := range []struct {
		name, host, serverName string
		records                map[string][]string
		secure                 bool
		wantSNI                string
		applies                bool
	}{
		{name: "the host's own records", host: "mx.dane.test", secure: true, applies: true, wantSNI: "mx.dane.test",
			records: map[string][]string{at("mx.dane.test") + " TLSA": {ee}}},
		{name: "a secure alias: its target's records, its target as SNI", host: "alias.dane.test", secure: true, applies: true,
			wantSNI: "mx.dane.test", records: map[string][]string{at("mx.dane.test") + " TLSA": {ee}}},
		{name: "a secure alias whose target has none: its own records and name", host: "alias.dane.test", secure: true,
			applies: true, wantSNI: "alias.dane.test", records: map[string][]string{at("alias.dane.test") + " TLSA": {ee}}},
		{name: "DANE replaces tls_config.server_name", host: "mx.dane.test", serverName: "other.test", secure: true, applies: true,
			wantSNI: "mx.dane.test", records: map[string][]string{at("mx.dane.test") + " TLSA": {ee}}},
		{name: "no DANE: the module's name", host: "alias.dane.test", serverName: "other.test", wantSNI: "other.test",
			records: map[string][]string{at("mx.dane.test") + " TLSA": {ee}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := dnstest.SecZone{Records: map[string][]string{"mx.dane.test. A": {"127.0.0.1"}, "alias.dane.test. A": alias}}
			for k, v := range tc.records {
				z.Records[k] = v
			}
			if tc.secure {
				z.Secure = map[string]bool{"mx.dane.test.": true, "alias.dane.test.": true, at("mx.dane.test"): true, at("alias.dane.test"): true}
			}
			opts := baseOptions()
			opts.TLS, opts.DANE, opts.Resolver = smtp.TLSStartTLS, true, dnstest.StartSec(t, z)
			opts.TLSConfig = &tls.Config{ServerName: tc.serverName, InsecureSkipVerify: !tc.applies}
			var lines []string
			opts.Transcript = func(l smtp.TranscriptLine) { lines = append(lines, l.String()) }
			res, d, _ := probeOne(t.Context(), tc.host, port, opts)
			srv.Wait(t)
			if got := <-sni; got != tc.wantSNI {
				t.Errorf("the server received SNI %q, want %q", got, tc.wantSNI)
			}
			if d.Applies() != tc.applies || res.Err != nil {
				t.Fatalf("applies %t (want %t), err %v", d.Applies(), tc.applies, res.Err)
			}
			if v, _ := d.Verified(); v != tc.applies {
				t.Errorf("verified %t, want %t: %v", v, tc.applies, d.VerifyErr)
			}
			transcript := strings.Join(lines, "\n")
			if tc.applies && !strings.Contains(transcript, "DANE: SNI "+tc.wantSNI+" (the TLSA base domain)") {
				t.Errorf("no note of the SNI:\n%s", transcript)
			}
			// Whose AD bit was trusted (RFC 4035 4.9.3) is in the TLSA note.
			if trusted := "AD bits of resolver " + opts.Resolver; tc.secure != strings.Contains(transcript, trusted) ||
				!tc.secure && !strings.Contains(transcript, "no AD bit from resolver "+opts.Resolver) {
				t.Errorf("the TLSA note does not name the resolver whose AD bit was trusted:\n%s", transcript)
			}
		})
	}
}

// TestProbeMXDANENextHop checks the DANE-TA name checks of an exchanger:
// a leaf issued only to the recipient domain passes when the host is
// reached through that domain's MX records (the next-hop domain is a
// reference name, RFC 7672 3.2.2), and fails when the host is the target.
func TestProbeMXDANENextHop(t *testing.T) {
	pki := testpki.Valid(t, "example.test")
	srv := smtptest.NewFake(t, "tcp4", starttlsScript(pki.Server))
	name := fmt.Sprintf("_%d._tcp.mx.dane.test.", srv.Port)
	opts := baseOptions()
	opts.TLS, opts.DANE = smtp.TLSStartTLS, true
	opts.Resolver = dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			"example.test. MX": {"10 mx.dane.test."},
			"mx.dane.test. A":  {"127.0.0.1"},
			name + " TLSA":     {tlsaText(mustTLSA(t, pki.CA, dane.TLSAUsageDANETA))},
		},
		Secure: map[string]bool{"example.test.": true, "mx.dane.test.": true, name: true},
	})
	mx, err := probeMXWith(t.Context(), "example.test", srv.Port, opts, 5)
	srv.Wait(t)
	if err != nil || mx.Err != nil || len(mx.Hosts) != 1 {
		t.Fatalf("mx probe: %v %v %+v", err, mx.Err, mx.Hosts)
	}
	h := mx.Hosts[0]
	if v, ok := h.DANE.Verified(); !v || !ok || h.Result.Err != nil || h.DANE.NextHop != "example.test" {
		t.Errorf("through the MX of example.test: verified %t (%t), next hop %q, err %v / %v", v, ok, h.DANE.NextHop, h.Result.Err, h.DANE.VerifyErr)
	}
	res, d, _ := probeOne(t.Context(), "mx.dane.test", srv.Port, opts)
	srv.Wait(t)
	if res.Err == nil || res.Err.Reason != ReasonDANE || !strings.Contains(res.Err.Error(), "name check") || d.NextHop != "mx.dane.test" {
		t.Errorf("mx.dane.test as the target: %v (next hop %q), want a name check failure with reason dane", res.Err, d.NextHop)
	}
}
