package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// labVerdict is how a DANE client judged one destination, in words both
// the exporter and posttls-finger can be read into.
type labVerdict struct {
	// TLSAAsked: the TLSA records were looked up (not for a host whose
	// address is not DNSSEC-authenticated, RFC 7672 2.2).
	TLSAAsked bool
	// Outcome is one of the outcomes below.
	Outcome string
}

const (
	daneVerified  = "DANE: verified"
	daneFailed    = "DANE: not verified"
	deferred      = "TLSA records undeterminable: deferred"
	pkixVerified  = "no DANE: WebPKI verified"
	pkixUntrusted = "no DANE: WebPKI untrusted"
)

func (v labVerdict) dane() bool { return v.Outcome == daneVerified || v.Outcome == daneFailed }

// labCase is one destination of the lab, judged by the exporter and by
// posttls-finger, which must agree with each other and with want.
type labCase struct {
	name string
	// dest is a host name, or with mx a recipient domain whose MX records
	// lead to the host.
	dest string
	mx   bool
	srv  *starttlsServer
	want labVerdict
	// sni is the name both must send as SNI where DANE applies: the TLSA
	// base domain (RFC 7672 8.1).
	sni string
	// more are lines posttls-finger must print besides.
	more []string
}

// agreeWithPosttlsFinger judges every DANE case of the lab twice: with the
// exporter's own probe (probe.Run, as /probe runs it) and with Postfix's
// posttls-finger, an independent DANE implementation, and requires the
// same verdict from both, and the same SNI where DANE applies.
//
// posttls-finger reads /etc/resolv.conf only, so it runs alone in a private
// mount namespace (unshare -m) where a bind-mounted resolv.conf names the
// lab's resolver (port 53 of a 127/8 address; the network namespace is
// shared, so the lab is reachable). Both trust the lab's CAs for WebPKI
// (-F for posttls-finger), so where DANE does not apply they judge the
// chain the same way too. With -v it logs each DNS query (whether a TLSA
// lookup was made) and 'resorting to "secure"' where DANE does not apply.
func (l *daneLab) agreeWithPosttlsFinger(ctx context.Context, t *testing.T) {
	_, err := os.Stat("/usr/sbin/posttls-finger")
	testenv.Require(t, err == nil, "posttls-finger (package postfix) is not installed")
	testenv.Require(t, l.resolverOn53, "posttls-finger needs the lab's resolver on port 53 of a 127/8 address (root, and no resolver of the machine on *:53)")
	unshare, err := exec.LookPath("unshare")
	testenv.Require(t, err == nil, "unshare (util-linux) is not installed")
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	host, _, _ := net.SplitHostPort(l.dns.Resolver)
	write(t, resolv, "nameserver "+host+"\noptions trust-ad\n")
	// An empty configuration directory: posttls-finger needs a main.cf.
	write(t, filepath.Join(dir, "main.cf"), "compatibility_level = 3.6\n")
	pkis := []*testpki.PKI{l.eePKI, l.taPKI, l.badPKI, l.plPKI, l.cnPKI, l.rcptPKI, l.deadPKI}
	roots := x509.NewCertPool()
	var bundle []byte
	for _, p := range pkis {
		roots.AddCert(p.CA)
		bundle = append(bundle, p.CAPEM()...)
	}
	cas := filepath.Join(dir, "cas.pem")
	write(t, cas, string(bundle))

	rec := func(cert *x509.Certificate, usage uint8) string {
		r, err := dane.TLSAFor(cert, usage, dane.TLSASelectorSPKI, dane.TLSAMatchSHA256)
		if err != nil {
			t.Fatal(err)
		}
		return strings.ToUpper(r.String())
	}
	eeMatched := "Matched DANE EE certificate at depth 0: " + rec(l.eePKI.Leaf, 3)
	cases := []labCase{
		{name: "DANE-EE", dest: "mx-ee.dane.test", srv: l.ee, want: labVerdict{true, daneVerified}, sni: "mx-ee.dane.test",
			more: []string{eeMatched}},
		{name: "DANE-TA", dest: "mx-ta.dane.test", srv: l.ta, want: labVerdict{true, daneVerified}, sni: "mx-ta.dane.test",
			more: []string{"matched peername: mx-ta.dane.test", "Matched DANE TA certificate at depth 1: " + rec(l.taPKI.CA, 2)}},
		{name: "a secure alias: its target's records", dest: "mx-alias.dane.test", srv: l.ee, want: labVerdict{true, daneVerified},
			sni: "mx-ee.dane.test", more: []string{eeMatched}},
		{name: "DANE-EE of another key", dest: "mx-bad.dane.test", srv: l.bad, want: labVerdict{true, daneFailed},
			sni: "mx-bad.dane.test", more: []string{"no matching DANE TLSA records"}},
		{name: "DANE-TA, a name the leaf lacks", dest: "mx-ta-wrongname.dane.test", srv: l.ta, want: labVerdict{true, daneFailed},
			sni: "mx-ta-wrongname.dane.test", more: []string{"hostname mismatch"}},
		{name: "bogus TLSA records", dest: "mx-bogus.dane.test", srv: l.ee, want: labVerdict{true, deferred},
			more: []string{"TLSA lookup error for mx-bogus.dane.test"}},
		{name: "a secure alias into an unsigned zone: its own records", dest: "mx-unsigned-addr.dane.test", srv: l.plain,
			want: labVerdict{true, daneVerified}, sni: "mx-unsigned-addr.dane.test",
			more: []string{"Matched DANE EE certificate at depth 0: " + rec(l.plPKI.Leaf, 3)}},
		{name: "authenticated denial", dest: "mx-none.dane.test", srv: l.none, want: labVerdict{true, pkixUntrusted}},
		{name: "unsigned zone: TLSA not asked", dest: "mx.plain.test", srv: l.plain, want: labVerdict{false, pkixVerified}},
		// Issue 18.
		{name: "DANE-TA, a leaf named by its CN alone", dest: "mx-cn.dane.test", srv: l.cn, want: labVerdict{true, daneVerified},
			sni: "mx-cn.dane.test", more: []string{"matched peername: mx-cn.dane.test", "Matched DANE TA certificate at depth 1"}},
		{name: "DANE-TA, a leaf naming only the recipient domain, reached by MX", dest: "rcpt.dane.test", mx: true, srv: l.rcpt,
			want: labVerdict{true, daneVerified}, sni: "mx-rcpt.dane.test", more: []string{"matched peername: rcpt.dane.test"}},
		{name: "DANE-TA, a leaf naming only the recipient domain, as the target", dest: "mx-rcpt.dane.test", srv: l.rcpt,
			want: labVerdict{true, daneFailed}, sni: "mx-rcpt.dane.test", more: []string{"hostname mismatch"}},
		{name: "an insecure alias in front of a secure host", dest: "mx-ialias.plain.test", srv: l.ee, want: labVerdict{false, pkixUntrusted}},
		{name: "a secure alias whose target's TLSA answer is insecure", dest: "mx-split.dane.test", srv: l.ee,
			want: labVerdict{true, daneVerified}, sni: "mx-split.dane.test", more: []string{eeMatched}},
		{name: "a dead nameserver for an unsigned host's _tcp label", dest: "mx-dead.plain.test", srv: l.dead, want: labVerdict{false, pkixVerified}},
		{name: "only unusable records: WebPKI", dest: "mx-pkix.dane.test", srv: l.ee, want: labVerdict{true, pkixUntrusted},
			more: []string{`no usable TLSA records found, resorting to "secure"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.srv.SNIs()
			got, transcript := l.exporterVerdict(ctx, t, c, roots)
			exporterSNI := c.srv.SNIs()
			ptf, out := l.posttlsFingerVerdict(t, c, unshare, dir, resolv, cas)
			ptfSNI := c.srv.SNIs()
			if got != c.want || ptf != c.want {
				t.Errorf("exporter: %+v, posttls-finger: %+v, want %+v", got, ptf, c.want)
			}
			for _, w := range c.more {
				if !strings.Contains(out, w) {
					t.Errorf("posttls-finger did not say %q", w)
				}
			}
			if c.want.dane() && (!slices.Equal(exporterSNI, []string{c.sni}) || !slices.Equal(ptfSNI, []string{c.sni})) {
				t.Errorf("SNI: the exporter sent %q, posttls-finger %q, want %q (the TLSA base domain)", exporterSNI, ptfSNI, c.sni)
			}
			if t.Failed() {
				t.Logf("exporter transcript:\n%s\nposttls-finger output:\n%s", transcript, out)
			} else {
				t.Logf("both: %s, TLSA asked: %t (SNI: the exporter's %q, posttls-finger's %q)", got.Outcome, got.TLSAAsked, exporterSNI, ptfSNI)
			}
		})
	}
}

// exporterVerdict probes c with probe.Run as /probe does (dane: true,
// STARTTLS, the lab's resolver and CAs) and reads its verdict.
func (l *daneLab) exporterVerdict(ctx context.Context, t *testing.T, c labCase, roots *x509.CertPool) (labVerdict, string) {
	t.Helper()
	p := &probe.Plan{Name: "lab", Timeout: 10 * time.Second, DANE: true, Success: config.MXSuccessAll,
		Options: &smtp.Options{HeloName: "probe.test", TLS: smtp.TLSStartTLS, Resolver: l.dns.Resolver,
			TLSConfig: &tls.Config{RootCAs: roots}}}
	target := probe.Target{Plan: p, Host: c.dest, Port: c.srv.Port, Key: c.dest}
	if c.mx {
		p.Port, target.Port = c.srv.Port, 0
		p.MX = &probe.MXPlan{Success: config.MXSuccessAll, MaxHosts: 1}
	}
	var lines []string
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	o, err := probe.Run(ctx, target, probe.Hooks{Transcript: func(line smtp.TranscriptLine) { lines = append(lines, line.String()) }})
	transcript := strings.Join(lines, "\n")
	if err != nil || len(o.Hosts) != 1 {
		t.Fatalf("probe: %v, %d hosts\n%s", err, len(o.Hosts), transcript)
	}
	res, d := o.Hosts[0].Result, o.Hosts[0].DANE
	// LookupTLSA asks for TLSA records exactly when the host is
	// authenticated (its tests count the questions).
	v := labVerdict{TLSAAsked: d != nil && d.TLSA != nil && d.TLSA.HostAuthenticated}
	switch {
	case res.Err != nil && res.Err.Phase == smtp.PhaseResolve && res.Err.Reason == probe.ReasonDANE:
		v.Outcome = deferred
	case d.Applies():
		v.Outcome = daneFailed
		if verified, _ := d.Verified(); verified && res.Err == nil {
			v.Outcome = daneVerified
		}
	case res.TLS != nil && res.TLS.Verified && res.Err == nil:
		v.Outcome = pkixVerified
	default:
		v.Outcome = pkixUntrusted
	}
	return v, transcript
}

// posttlsFingerVerdict asks posttls-finger about c and reads its verdict
// from its verbose output.
func (l *daneLab) posttlsFingerVerdict(t *testing.T, c labCase, unshare, dir, resolv, cas string) (labVerdict, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dest := fmt.Sprintf("[%s]:%d", c.dest, c.srv.Port)
	if c.mx {
		dest = fmt.Sprintf("%s:%d", c.dest, c.srv.Port) // an MX lookup, the exchangers on that port
	}
	cmd := exec.CommandContext(ctx, unshare, "-m", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec /usr/sbin/posttls-finger -v -c -l dane -F "$3" -t 10 -T 10 "$2"`,
		"sh", resolv, dest, cas)
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+dir)
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil && !strings.Contains(out, "TLSA lookup error") {
		t.Fatalf("posttls-finger %s: %v\n%s", dest, err, out)
	}
	v := labVerdict{TLSAAsked: strings.Contains(out, " (TLSA): ")}
	noDANE := strings.Contains(out, `resorting to "secure"`)
	switch {
	case strings.Contains(out, "TLSA lookup error"):
		v.Outcome = deferred
	case strings.Contains(out, "Verified TLS connection established") && !noDANE:
		v.Outcome = daneVerified
	case strings.Contains(out, "Untrusted TLS connection established") && !noDANE:
		v.Outcome = daneFailed
	case strings.Contains(out, "Verified TLS connection established"):
		v.Outcome = pkixVerified
	case strings.Contains(out, "Untrusted TLS connection established"):
		v.Outcome = pkixUntrusted
	default:
		v.Outcome = "no TLS connection: " + out
	}
	return v, out
}
