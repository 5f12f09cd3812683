package integration

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/internal/dnslab"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
	"github.com/smtp-exporter/smtp_exporter/tlsrpt"
)

// daneLab is the world of the DANE, MTA-STS and TLS-RPT tests: a signed
// zone dane.test and an unsigned zone plain.test served by NSD, unbound
// validating them, STARTTLS servers whose certificates match a DANE-EE
// record, chain to a DANE-TA record, or match nothing, and an HTTPS server
// with the MTA-STS policies of both zones.
type daneLab struct {
	dns                         *dnslab.Lab
	ee, ta, bad, none, plain    *starttlsServer
	dual4, dual6                *starttlsServer // mx-dual.dane.test on 127.0.0.1 and [::1], one port; nil without IPv6 loopback
	eePKI, taPKI, badPKI, plPKI *testpki.PKI
	policyPKI                   *testpki.PKI
	resolverOn53                bool
	// The cases of issue 18: a leaf named by its subject CN alone under a
	// DANE-TA record (mx-cn.dane.test), a leaf naming only the recipient
	// domain (rcpt.dane.test, MX mx-rcpt.dane.test), a host of an unsigned
	// zone whose _tcp label is delegated to a nameserver that never
	// answers (mx-dead.plain.test).
	cn, rcpt, dead          *starttlsServer
	cnPKI, rcptPKI, deadPKI *testpki.PKI
}

// randomLoopback returns a random address in 127/8 (all of it is loopback
// on Linux), so tests of several workers on fixed ports do not collide.
func randomLoopback(t *testing.T) netip.Addr {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return netip.AddrFrom4([4]byte{127, 1 + b[0]%250, b[1], 1 + b[2]%250})
}

// port53Free reports whether port 53 of ip can be bound for UDP and TCP:
// as root, unless a resolver of the machine listens on every address.
func port53Free(ip netip.Addr) bool {
	addr := net.JoinHostPort(ip.String(), "53")
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return false
	}
	defer pc.Close()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return false
	}
	return ln.Close() == nil
}

func tlsa(t *testing.T, cert *x509.Certificate, usage uint8) string {
	t.Helper()
	r, err := dane.TLSAFor(cert, usage, dane.TLSASelectorSPKI, dane.TLSAMatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return "TLSA " + r.String()
}

// startDANELab builds the world; where it can (as root) the resolver
// listens on port 53 of a random 127/8 address (what /etc/resolv.conf can
// name, for posttls-finger), else on a free port of 127.0.0.1.
func startDANELab(t *testing.T) *daneLab {
	t.Helper()
	dnslab.Require(t)
	l := &daneLab{
		eePKI:  testpki.Valid(t, "mx-ee.dane.test"),
		taPKI:  testpki.Valid(t, "mx-ta.dane.test"),
		badPKI: testpki.Valid(t, "mx-bad.dane.test"),
		plPKI:  testpki.Valid(t, "mx.plain.test"),
	}
	other := testpki.Valid(t, "mx-bad.dane.test")    // the key mx-bad's TLSA names
	l.cnPKI = testpki.NewNamed(t, "mx-cn.dane.test") // no subject alternative name
	l.rcptPKI = testpki.Valid(t, "rcpt.dane.test")
	l.deadPKI = testpki.Valid(t, "mx-dead.plain.test")
	l.cn = startSTARTTLS(t, "mx-cn.dane.test", l.cnPKI.Server)
	l.rcpt = startSTARTTLS(t, "mx-rcpt.dane.test", l.rcptPKI.Server)
	l.dead = startSTARTTLS(t, "mx-dead.plain.test", l.deadPKI.Server)
	l.ee = startSTARTTLS(t, "mx-ee.dane.test", l.eePKI.Server)
	l.ta = startSTARTTLS(t, "mx-ta.dane.test", l.taPKI.Server)
	l.bad = startSTARTTLS(t, "mx-bad.dane.test", l.badPKI.Server)
	l.none = startSTARTTLS(t, "mx-none.dane.test", l.eePKI.Server)
	l.plain = startSTARTTLS(t, "mx.plain.test", l.plPKI.Server)
	var dualRecords []string
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		// One name, an IPv4 and an IPv6 address, the same port on both.
		for try := 0; l.dual6 == nil && try < 20; try++ {
			l.dual4 = startSTARTTLS(t, "mx-dual.dane.test", l.eePKI.Server)
			l.dual6, _ = startSTARTTLSOn(t, "mx-dual.dane.test", l.eePKI.Server, fmt.Sprintf("[::1]:%d", l.dual4.Port))
		}
		if l.dual6 != nil {
			dualRecords = []string{
				"dual MX 10 mx-dual.dane.test.",
				"mx-dual A 127.0.0.1",
				"mx-dual AAAA ::1",
				fmt.Sprintf("_%d._tcp.mx-dual %s", l.dual4.Port, tlsa(t, l.eePKI.Leaf, dane.TLSAUsageDANEEE)),
			}
		}
	}

	// The MTA-STS policy server: port 443 of a random 127/8 address.
	httpsIP := randomLoopback(t)
	l.policyPKI = testpki.Valid(t, "mta-sts.dane.test", "mta-sts.plain.test")
	ln, err := net.Listen("tcp4", net.JoinHostPort(httpsIP.String(), "443"))
	testenv.Require(t, err == nil, "the MTA-STS policy server needs port 443 of a 127/8 address (root): %v", err)
	policies := map[string]string{
		"mta-sts.dane.test":  "version: STSv1\r\nmode: enforce\r\nmx: mx-ee.dane.test\r\nmx: *.mx.dane.test\r\nmax_age: 86400\r\n",
		"mta-sts.plain.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 604800\r\n",
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := policies[r.Host]
			if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, p)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(tls.NewListener(ln, l.policyPKI.Server)) }()
	t.Cleanup(func() {
		srv.Close()
		<-srvDone
	})

	// A loopback address where no nameserver listens: the dead nameserver.
	deadNS := randomLoopback(t)
	for !port53Free(deadNS) {
		deadNS = randomLoopback(t)
	}
	cfg := dnslab.Config{Zones: []dnslab.Zone{
		{Name: "dane.test", Signed: true, Records: append([]string{
			"@ MX 10 mx-ee.dane.test.",
			"@ MX 20 mx-ta.dane.test.",
			"mx-ee A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-ee %s", l.ee.Port, tlsa(t, l.eePKI.Leaf, dane.TLSAUsageDANEEE)),
			"mx-ta A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-ta %s", l.ta.Port, tlsa(t, l.taPKI.CA, dane.TLSAUsageDANETA)),
			"mx-bad A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-bad %s", l.bad.Port, tlsa(t, other.Leaf, dane.TLSAUsageDANEEE)),
			"mx-none A 127.0.0.1",
			// An alias: the TLSA base domain is its target (RFC 7672 2.2.2).
			"mx-alias CNAME mx-ee",
			// A secure alias whose address is in an unsigned zone: the
			// alias's own TLSA records apply (RFC 7672 2.2.2).
			"mx-unsigned-addr CNAME mx.plain.test.",
			fmt.Sprintf("_%d._tcp.mx-unsigned-addr %s", l.plain.Port, tlsa(t, l.plPKI.Leaf, dane.TLSAUsageDANEEE)),
			// The TA's chain, but a name its leaf is not issued to.
			"mx-ta-wrongname A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-ta-wrongname %s", l.ta.Port, tlsa(t, l.taPKI.CA, dane.TLSAUsageDANETA)),
			"mx-bogus A 127.0.0.1",
			// Issue 18. A leaf named by its CN alone, under DANE-TA.
			"mx-cn A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-cn %s", l.cn.Port, tlsa(t, l.cnPKI.CA, dane.TLSAUsageDANETA)),
			// A leaf naming only the recipient domain rcpt.dane.test.
			"rcpt MX 10 mx-rcpt.dane.test.",
			"mx-rcpt A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-rcpt %s", l.rcpt.Port, tlsa(t, l.rcptPKI.CA, dane.TLSAUsageDANETA)),
			// A secure alias whose target's TLSA name leads into the
			// unsigned zone (records without the AD bit): the alias's own,
			// authenticated, records apply (RFC 7672 2.2.2).
			"mx-split CNAME mx-split-target",
			"mx-split-target A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-split-target CNAME _%d._tcp.mx-split-target.plain.test.", l.ee.Port, l.ee.Port),
			fmt.Sprintf("_%d._tcp.mx-split %s", l.ee.Port, tlsa(t, l.eePKI.Leaf, dane.TLSAUsageDANEEE)),
			// Authenticated records, none usable (PKIX-EE only).
			"mx-pkix A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx-pkix %s", l.ee.Port, tlsa(t, l.eePKI.Leaf, dane.TLSAUsagePKIXEE)),
			`_mta-sts TXT "v=STSv1; id=lab1;"`,
			"mta-sts A " + httpsIP.String(),
			`_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@dane.test"`,
		}, dualRecords...), Bogus: []string{
			// Unsigned data in the signed zone: the validator refuses it,
			// although it names the right key.
			fmt.Sprintf("_%d._tcp.mx-bogus %s", l.ee.Port, tlsa(t, l.eePKI.Leaf, dane.TLSAUsageDANEEE)),
		}},
		{Name: "plain.test", Records: []string{
			"@ MX 10 mx.plain.test.",
			"mx A 127.0.0.1",
			fmt.Sprintf("_%d._tcp.mx %s", l.plain.Port, tlsa(t, l.plPKI.Leaf, dane.TLSAUsageDANEEE)),
			// An insecure alias in front of a secure host: DANE does not
			// apply, neither the alias's records nor its target's.
			"mx-ialias CNAME mx-ee.dane.test.",
			fmt.Sprintf("_%d._tcp.mx-ialias %s", l.ee.Port, tlsa(t, other.Leaf, dane.TLSAUsageDANEEE)),
			// The other key, insecure, where mx-split-target's TLSA name
			// leads.
			fmt.Sprintf("_%d._tcp.mx-split-target %s", l.ee.Port, tlsa(t, other.Leaf, dane.TLSAUsageDANEEE)),
			// A host whose _tcp label is delegated to a dead nameserver:
			// its TLSA lookup would fail (SERVFAIL), but it is insecure,
			// so nobody asks.
			"mx-dead A 127.0.0.1",
			"_tcp.mx-dead NS ns-dead.plain.test.",
			"ns-dead A " + deadNS.String(),
			`_mta-sts TXT "v=STSv1; id=lab2"`,
			"mta-sts A " + httpsIP.String(),
		}},
	}}
	if ip := randomLoopback(t); port53Free(ip) {
		cfg.ResolverIP, cfg.ResolverPort = ip, 53
		l.resolverOn53 = true
	}
	l.dns = dnslab.Start(t, cfg)
	return l
}

// certsOf probes host's STARTTLS server with the exporter's own dialog,
// accepting any certificate, and returns the chain it presented.
func certsOf(t *testing.T, s *starttlsServer) []*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := smtp.Probe(ctx, "127.0.0.1", s.Port, &smtp.Options{
		HeloName:  "probe.test",
		TLS:       smtp.TLSStartTLS,
		TLSConfig: &tls.Config{InsecureSkipVerify: true},
	})
	if err != nil || res.TLS == nil || len(res.TLS.PeerCertificates) == 0 {
		t.Fatalf("probing %s: %v (tls %+v)", s.addr(), err, res.TLS)
	}
	return res.TLS.PeerCertificates
}

func TestDANELab(t *testing.T) {
	start := time.Now()
	l := startDANELab(t)
	t.Logf("lab up in %s (resolver %s)", time.Since(start).Round(time.Millisecond), l.dns.Resolver)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	t.Run("dane", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			host         string
			srv          *starttlsServer
			auth, denied bool
			usable       int
			wantMatch    bool
			wantDepth    int
			wantBase     string
		}{
			{name: "DANE-EE matches", host: "mx-ee.dane.test", srv: l.ee, auth: true, usable: 1, wantMatch: true},
			{name: "DANE-TA matches", host: "mx-ta.dane.test", srv: l.ta, auth: true, usable: 1, wantMatch: true, wantDepth: 1},
			{name: "DANE-EE of another key fails", host: "mx-bad.dane.test", srv: l.bad, auth: true, usable: 1},
			{name: "DANE-TA for a name the leaf does not have fails", host: "mx-ta-wrongname.dane.test", srv: l.ta, auth: true, usable: 1},
			{name: "an alias uses its target's records", host: "mx-alias.dane.test", srv: l.ee, auth: true, usable: 1,
				wantMatch: true, wantBase: "mx-ee.dane.test"},
			{name: "a secure alias to an unsigned zone uses its own records", host: "mx-unsigned-addr.dane.test", srv: l.plain,
				auth: true, usable: 1, wantMatch: true},
			{name: "no TLSA in a signed zone: authenticated denial", host: "mx-none.dane.test", srv: l.none, auth: true, denied: true},
			// RFC 7672 2.2: no TLSA lookup for a host whose address is not
			// authenticated; its TLSA record is not even seen.
			{name: "unsigned zone: no TLSA lookup", host: "mx.plain.test", srv: l.plain},
			{name: "a dead nameserver for an unsigned host's _tcp label: not asked", host: "mx-dead.plain.test", srv: l.dead},
			{name: "an insecure alias in front of a secure host: not asked", host: "mx-ialias.plain.test", srv: l.ee},
			{name: "DANE-TA, a leaf named by its CN alone", host: "mx-cn.dane.test", srv: l.cn, auth: true, usable: 1,
				wantMatch: true, wantDepth: 1},
			// RFC 7672 2.2.2: the expanded name's records lack the AD bit.
			{name: "a secure alias whose target's TLSA answer is insecure: its own records", host: "mx-split.dane.test",
				srv: l.ee, auth: true, usable: 1, wantMatch: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// A deadline of its own: a lookup that hangs (a dead
				// nameserver) must not eat the other cases' time.
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				res, err := dane.LookupTLSA(ctx, l.dns.Resolver, tc.host, tc.srv.Port)
				if err != nil {
					t.Fatal(err)
				}
				// Every host of the signed zone has an authenticated address.
				if res.Authenticated != tc.auth || res.Denied != tc.denied || len(res.Usable()) != tc.usable ||
					res.HostAuthenticated != tc.auth {
					t.Fatalf("%s: authenticated %t (address %t) denied %t usable %d; want %t (%t) %t %d",
						res.Name, res.Authenticated, res.HostAuthenticated, res.Denied, len(res.Usable()),
						tc.auth, tc.auth, tc.denied, tc.usable)
				}
				if base := cmp.Or(tc.wantBase, tc.host); res.BaseDomain != base {
					t.Errorf("TLSA base domain %s, want %s", res.BaseDomain, base)
				}
				d, failure := probe.NewDANEResult(res, nil)
				if failure != nil {
					t.Fatal(failure)
				}
				failure = d.CheckTLS(smtp.PhaseStartTLS, certsOf(t, tc.srv))
				if !res.Applies() {
					if _, present := d.Verified(); present || failure != nil || d.CheckNoTLS() != nil {
						t.Errorf("DANE does not apply, yet verified is present or the probe fails (%v)", failure)
					}
					return // reported, not a failure: nothing to verify
				}
				if (failure == nil) != tc.wantMatch || (failure != nil && (failure.Reason != probe.ReasonDANE || failure.Phase != smtp.PhaseStartTLS)) {
					t.Errorf("failure %v, want none: %t (else phase starttls, reason dane)", failure, tc.wantMatch)
				}
				if f := (&probe.DANEResult{TLSA: res}).CheckNoTLS(); f == nil || f.Reason != probe.ReasonDANE {
					t.Errorf("without STARTTLS: %v, want reason dane", f)
				}
				verified, present := d.Verified()
				if !present || verified != tc.wantMatch {
					t.Fatalf("verified %t (present %t), want %t: %v", verified, present, tc.wantMatch, d.VerifyErr)
				}
				if tc.wantMatch && d.Match.Depth != tc.wantDepth {
					t.Errorf("matched at depth %d, want %d", d.Match.Depth, tc.wantDepth)
				}
				if !tc.wantMatch && !errors.Is(d.VerifyErr, dane.ErrMismatch) {
					t.Errorf("error %v does not wrap ErrDANEMismatch", d.VerifyErr)
				}
			})
		}
	})

	t.Run("bogus TLSA records fail the probe", func(t *testing.T) {
		res, err := dane.LookupTLSA(ctx, l.dns.Resolver, "mx-bogus.dane.test", l.ee.Port)
		if !errors.Is(err, dnssec.ErrServFail) {
			t.Fatalf("err = %v, want SERVFAIL", err)
		}
		if _, failure := probe.NewDANEResult(res, err); failure == nil || failure.Reason != probe.ReasonDANE || failure.Phase != smtp.PhaseResolve {
			t.Errorf("failure %v, want phase resolve, reason dane", failure)
		}
	})

	t.Run("mta-sts", func(t *testing.T) {
		opts := mtasts.Options{Resolver: l.dns.Resolver, TLSConfig: &tls.Config{RootCAs: l.policyPKI.Pool},
			CheckAddr: func(host string, addr netip.Addr) error {
				if !addr.IsLoopback() {
					return fmt.Errorf("%s resolved to %s, not loopback", host, addr)
				}
				return nil
			}}
		for _, tc := range []struct {
			domain, mx, id string
			maxAge         int64
			matched        bool
		}{
			{domain: "dane.test", mx: "mx-ee.dane.test", id: "lab1", maxAge: 86400, matched: true},
			{domain: "dane.test", mx: "a.mx.dane.test", id: "lab1", maxAge: 86400, matched: true},
			{domain: "dane.test", mx: "mx-ta.dane.test", id: "lab1", maxAge: 86400},
			{domain: "plain.test", mx: "mx.plain.test", id: "lab2", maxAge: 604800},
		} {
			t.Run(tc.domain+" "+tc.mx, func(t *testing.T) {
				res, err := mtasts.Lookup(ctx, tc.domain, opts)
				if err != nil {
					t.Fatal(err)
				}
				p := res.Policy
				if res.Record.ID != tc.id || p.Mode != mtasts.ModeEnforce || p.MaxAge != tc.maxAge || !res.Addr.IsLoopback() {
					t.Fatalf("record %+v policy %+v from %s", res.Record, p, res.Addr)
				}
				if p.Matches(tc.mx) != tc.matched {
					t.Errorf("Matches(%s) = %t, want %t", tc.mx, !tc.matched, tc.matched)
				}
				f := p.CheckMX(tc.mx, true)
				if (f == nil) != tc.matched || !p.Enforced() {
					t.Errorf("CheckMX(%s) = %v, want a failure: %t (enforced)", tc.mx, f, !tc.matched)
				}
				if f := p.CheckMX(tc.mx, false); f == nil {
					t.Errorf("an enforce policy accepted %s with a certificate that does not validate", tc.mx)
				}
			})
		}
		t.Run("no policy", func(t *testing.T) {
			_, err := mtasts.Lookup(ctx, "nothing.dane.test", opts)
			if !errors.Is(err, mtasts.ErrNoPolicy) {
				t.Fatalf("err = %v, want ErrNoMTASTS", err)
			}
		})
	})

	t.Run("tls-rpt", func(t *testing.T) {
		for domain, want := range map[string]bool{"dane.test": true, "plain.test": false} {
			res, err := tlsrpt.Lookup(ctx, l.dns.Resolver, domain)
			if err != nil {
				t.Fatal(err)
			}
			if (res.Record != nil) != want {
				t.Errorf("%s: record %+v (%v), want present %t", domain, res.Record, res.Err, want)
			}
		}
	})

	t.Run("through the probe", func(t *testing.T) {
		l.probeThroughEngine(ctx, t)
	})
	t.Run("through the exporter", func(t *testing.T) {
		l.throughExporter(t)
	})
	t.Run("posttls-finger agrees", func(t *testing.T) {
		l.agreeWithPosttlsFinger(ctx, t)
	})
	for _, s := range []*starttlsServer{l.ee, l.ta, l.bad, l.none, l.plain, l.dual4, l.dual6, l.cn, l.rcpt, l.dead} {
		if s == nil {
			continue
		}
		select {
		case err := <-s.Errs:
			t.Errorf("%s: %v", s.addr(), err)
		default:
		}
	}
}

// probeThroughEngine runs the exporter's own probes (probe.Run with plans
// of dane, mta_sts, tls_rpt and addresses: all) against the lab.
func (l *daneLab) probeThroughEngine(ctx context.Context, t *testing.T) {
	loopbackOnly := func(host string, addr netip.Addr) error {
		if !addr.IsLoopback() {
			return fmt.Errorf("%s resolved to %s, not loopback", host, addr)
		}
		return nil
	}
	plan := func(roots *x509.CertPool) *probe.Plan {
		return &probe.Plan{Name: "lab", Timeout: 10 * time.Second, DANE: true, Success: config.MXSuccessAll,
			Options: &smtp.Options{HeloName: "probe.test", TLS: smtp.TLSStartTLS, Resolver: l.dns.Resolver,
				TLSConfig: &tls.Config{RootCAs: roots}}}
	}
	run := func(t *testing.T, p *probe.Plan, host string, port uint16, lines *[]string) *probe.Outcome {
		t.Helper()
		h := probe.Hooks{CheckAddr: loopbackOnly}
		if lines != nil {
			h.Transcript = func(line smtp.TranscriptLine) { *lines = append(*lines, line.String()) }
		}
		o, err := probe.Run(ctx, probe.Target{Plan: p, Host: host, Port: port, Key: host}, h)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	t.Run("dane", func(t *testing.T) {
		for _, tc := range []struct {
			name, host string
			srv        *starttlsServer
			roots      *x509.CertPool // nil: the system's, which the lab's certificates do not chain to
			wantReason smtp.Reason
			applies    bool
			verified   bool
			depth      int
			usable     int
		}{
			{name: "DANE-EE verifies without WebPKI", host: "mx-ee.dane.test", srv: l.ee, applies: true, verified: true, usable: 1},
			{name: "DANE-TA verifies without WebPKI", host: "mx-ta.dane.test", srv: l.ta, applies: true, verified: true, depth: 1, usable: 1},
			{name: "a mismatch fails with reason dane", host: "mx-bad.dane.test", srv: l.bad, roots: l.badPKI.Pool,
				applies: true, wantReason: probe.ReasonDANE, usable: 1},
			{name: "unsigned zone: no TLSA lookup, not a failure", host: "mx.plain.test", srv: l.plain, roots: l.plPKI.Pool},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var lines []string
				o := run(t, plan(tc.roots), tc.host, tc.srv.Port, &lines)
				res, d := o.Hosts[0].Result, o.Hosts[0].DANE
				transcript := strings.Join(lines, "\n")
				if tc.wantReason == "" && res.Err != nil {
					t.Fatalf("probe failed: %v\n%s", res.Err, transcript)
				}
				if tc.wantReason != "" && (res.Err == nil || res.Err.Reason != tc.wantReason || res.Err.Phase != smtp.PhaseStartTLS) {
					t.Fatalf("err %v, want phase starttls, reason %s\n%s", res.Err, tc.wantReason, transcript)
				}
				if d == nil || d.Applies() != tc.applies || d.Authenticated() != tc.applies || d.UsableRecords() != tc.usable {
					t.Fatalf("DANE %+v: applies %t authenticated %t usable %d; want %t %t %d", d, d.Applies(), d.Authenticated(), d.UsableRecords(), tc.applies, tc.applies, tc.usable)
				}
				if want := "resolver " + l.dns.Resolver; !strings.Contains(transcript, want) {
					t.Errorf("the TLSA note does not name the resolver whose AD bit was trusted (%s):\n%s", want, transcript)
				}
				verified, present := d.Verified()
				if present != tc.applies || verified != tc.verified {
					t.Errorf("verified %t (present %t), want %t (%t): %v", verified, present, tc.verified, tc.applies, d.VerifyErr)
				}
				if tc.verified && (d.Match.Depth != tc.depth || res.TLS.Verified) {
					t.Errorf("matched at depth %d (want %d), WebPKI verified %t (want false: the system's roots)", d.Match.Depth, tc.depth, res.TLS.Verified)
				}
				if tc.verified && !strings.Contains(transcript, "DANE applies") {
					t.Errorf("no note of the TLSA records:\n%s", transcript)
				}
			})
		}
	})
	t.Run("mta-sts and tls-rpt", func(t *testing.T) {
		for _, tc := range []struct {
			domain     string
			srv        *starttlsServer
			roots      *x509.CertPool
			wantReason smtp.Reason
			rpt        bool
		}{
			// dane.test's first MX, mx-ee, is listed by its enforce policy.
			{domain: "dane.test", srv: l.ee, roots: l.eePKI.Pool, rpt: true},
			// plain.test's enforce policy lists mx.elsewhere.test only.
			{domain: "plain.test", srv: l.plain, roots: l.plPKI.Pool, wantReason: probe.ReasonMTASTS},
		} {
			t.Run(tc.domain, func(t *testing.T) {
				p := plan(tc.roots)
				p.Port = tc.srv.Port
				p.MX = &probe.MXPlan{Success: config.MXSuccessAll, MaxHosts: 1}
				p.MTASTS = &mtasts.Options{TLSConfig: &tls.Config{RootCAs: l.policyPKI.Pool}}
				p.TLSRPT = true
				o := run(t, p, tc.domain, 0, nil)
				if len(o.Hosts) != 1 || o.Hosts[0].Name == "" {
					t.Fatalf("outcome %+v", o)
				}
				if o.MTASTS == nil || o.MTASTS.Policy.Mode != mtasts.ModeEnforce {
					t.Fatalf("policy %+v", o.MTASTS)
				}
				h := o.Hosts[0].Result
				if tc.wantReason == "" && (h.Err != nil || !o.Success) {
					t.Errorf("%s failed: %v", o.Hosts[0].Name, h.Err)
				}
				if tc.wantReason != "" && (h.Err == nil || h.Err.Reason != tc.wantReason || h.Err.Phase != probe.PhaseMTASTS) {
					t.Errorf("%s: %v, want phase mta_sts, reason %s", o.Hosts[0].Name, h.Err, tc.wantReason)
				}
				if o.TLSRPT == nil || (o.TLSRPT.Record != nil) != tc.rpt {
					t.Errorf("TLS-RPT %+v, want a record: %t", o.TLSRPT, tc.rpt)
				}
			})
		}
	})
	t.Run("addresses all", func(t *testing.T) {
		testenv.Require(t, l.dual6 != nil, "no IPv6 loopback ([::1]) with a port free on both loopbacks")
		p := plan(l.eePKI.Pool)
		p.AllAddresses = true
		check := func(t *testing.T, hosts []probe.Host) {
			t.Helper()
			if len(hosts) != 2 {
				t.Fatalf("%d results, want IPv4 and IPv6", len(hosts))
			}
			for i, want := range []string{"127.0.0.1", "::1"} {
				r, d := hosts[i].Result, hosts[i].DANE
				if r.Addr.Addr().String() != want || !r.Success() {
					t.Errorf("result %d: %s %v, want %s and success", i, r.Addr, r.Err, want)
				}
				if v, ok := d.Verified(); !v || !ok {
					t.Errorf("result %d (%s): DANE not verified: %v", i, r.Addr, d.VerifyErr)
				}
			}
		}
		check(t, run(t, p, "mx-dual.dane.test", l.dual4.Port, nil).Hosts)
		p.Port = l.dual4.Port
		p.MX = &probe.MXPlan{Success: config.MXSuccessAll, MaxHosts: 5}
		o := run(t, p, "dual.dane.test", 0, nil)
		check(t, o.Hosts)
		if o.Hosts[0].Name != "mx-dual.dane.test" || o.Hosts[1].Name != "mx-dual.dane.test" {
			t.Errorf("MX hosts %s, %s", o.Hosts[0].Name, o.Hosts[1].Name)
		}
	})
}
