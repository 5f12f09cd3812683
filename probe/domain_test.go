package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/policytest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// mxSTSZone is example.test with one exchanger, mx.example.test, on
// 127.0.0.1, and the MTA-STS and TLS-RPT records asked for.
func mxSTSZone(t *testing.T, stsTXT, rptTXT string) string {
	t.Helper()
	recs := map[string][]string{
		"example.test. MX":         {"10 mx.example.test."},
		"mx.example.test. A":       {"127.0.0.1"},
		"mta-sts.example.test. A":  {"127.0.0.1"},
		"another.example.test. MX": {"10 mx.example.test."},
	}
	if stsTXT != "" {
		recs["_mta-sts.example.test. TXT"] = []string{strconv.Quote(stsTXT)}
	}
	if rptTXT != "" {
		recs["_smtp._tls.example.test. TXT"] = []string{strconv.Quote(rptTXT)}
	}
	return dnstest.StartSec(t, dnstest.SecZone{Records: recs})
}

// countingSMTP is a STARTTLS server for mx.example.test that counts its
// connections.
type countingSMTP struct {
	*smtptest.Fake
	conns atomic.Int32
}

func startCountingSMTP(t *testing.T, cfg *tls.Config) *countingSMTP {
	c := &countingSMTP{}
	handler := smtptest.Script(cfg,
		"S: 220 mx.example.test ESMTP",
		"C: EHLO probe.test",
		"S: 250-mx.example.test\n250 STARTTLS",
		"C: STARTTLS",
		"S: 220 go ahead",
		"TLS",
		"C: EHLO probe.test",
		"S: 250 mx.example.test",
		"C: QUIT",
		"S: 221 bye")
	c.Fake = smtptest.NewFake(t, "tcp4", func(fc *smtptest.Conn) error {
		c.conns.Add(1)
		return handler(fc)
	})
	return c
}

func TestProbeMXMTASTS(t *testing.T) {
	mxPKI := testpki.Valid(t, "mx.example.test")
	const record = "v=STSv1; id=20260101;"
	policy := func(mode string, mx ...string) string {
		return "version: STSv1\r\nmode: " + mode + "\r\nmx: " + strings.Join(mx, "\r\nmx: ") + "\r\nmax_age: 86400\r\n"
	}
	for _, tc := range []struct {
		name       string
		record     string
		handler    http.HandlerFunc
		untrusted  bool // the MX's certificate does not verify
		wantReason smtp.Reason
		wantPolicy string      // the mode of the policy reported; "" for none
		wantErr    smtp.Reason // MTASTSErr's reason
		wantNote   string
	}{
		{name: "enforce, the mx listed: passes", record: record, handler: policytest.Handler(policy("enforce", "mx.example.test")),
			wantPolicy: mtasts.ModeEnforce, wantNote: "mx mx.example.test matches the policy: true"},
		{name: "enforce, a wildcard lists the mx: passes", record: record, handler: policytest.Handler(policy("enforce", "*.example.test")),
			wantPolicy: mtasts.ModeEnforce},
		{name: "enforce, the mx not listed: fails with mta_sts", record: record, handler: policytest.Handler(policy("enforce", "mx.elsewhere.test")),
			wantPolicy: mtasts.ModeEnforce, wantReason: ReasonMTASTS, wantNote: "matches no mx pattern"},
		{name: "enforce, the certificate does not validate: fails with mta_sts", record: record, untrusted: true,
			handler: policytest.Handler(policy("enforce", "mx.example.test")), wantPolicy: mtasts.ModeEnforce, wantReason: ReasonMTASTS},
		{name: "testing, the mx not listed: reported only", record: record, handler: policytest.Handler(policy("testing", "mx.elsewhere.test")),
			wantPolicy: mtasts.ModeTesting, wantNote: "reported only"},
		{name: "no policy: nothing to check", handler: policytest.Handler(policy("enforce", "mx.elsewhere.test")),
			wantNote: "publishes no mta-sts record"},
		{name: "a policy that cannot be fetched: reported, not a failure", record: record, handler: http.NotFound,
			wantErr: ReasonMTASTS, wantNote: "MTA-STS lookup failed"},
		{name: "a policy server that never answers: a timeout, the exchangers still probed", record: record, handler: policytest.Silent,
			wantErr: smtp.ReasonTimeout, wantNote: "MTA-STS lookup failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := policytest.Start(t, tc.handler)
			smtpSrv := startCountingSMTP(t, mxPKI.Server)
			rec := &recorder{}
			opts := baseOptions()
			opts.TLS, opts.Transcript = smtp.TLSStartTLS, rec.add
			opts.Resolver = mxSTSZone(t, tc.record, "")
			opts.TLSConfig = &tls.Config{RootCAs: mxPKI.Pool}
			if tc.untrusted {
				opts.TLSConfig = &tls.Config{InsecureSkipVerify: true}
			}
			opts.MTASTS = &mtasts.Options{TLSConfig: &tls.Config{RootCAs: ps.PKI.Pool}, Port: ps.Port}
			// A generous deadline: the silent policy server takes half of it.
			ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
			defer cancel()
			res, err := probeMXWith(ctx, "example.test", smtpSrv.Port, opts, 5)
			if err != nil || res.Err != nil || len(res.Hosts) != 1 {
				t.Fatalf("result %+v, err %v", res, err)
			}
			smtpSrv.Wait(t)
			h := res.Hosts[0].Result
			if tc.wantReason == "" {
				if h.Err != nil || !res.Success(config.MXSuccessAll) {
					t.Errorf("exchanger failed: %v\n%s", h.Err, rec.text())
				}
			} else if h.Err == nil || h.Err.Reason != tc.wantReason || h.Err.Phase != PhaseMTASTS || res.Success(config.MXSuccessAny) {
				t.Errorf("exchanger: %v, want phase mta_sts reason %s", h.Err, tc.wantReason)
			}
			if tc.wantPolicy == "" && res.MTASTS != nil || tc.wantPolicy != "" && (res.MTASTS == nil || res.MTASTS.Policy.Mode != tc.wantPolicy) {
				t.Errorf("policy %+v, want mode %q", res.MTASTS, tc.wantPolicy)
			}
			if tc.wantPolicy != "" && (res.MTASTS.Record.ID != "20260101" || res.MTASTS.Policy.MaxAge != 86400) {
				t.Errorf("policy id %s max_age %d", res.MTASTS.Record.ID, res.MTASTS.Policy.MaxAge)
			}
			if (res.MTASTSErr == nil) != (tc.wantErr == "") || res.MTASTSErr != nil && (res.MTASTSErr.Reason != tc.wantErr || res.MTASTSErr.Phase != PhaseMTASTS) {
				t.Errorf("MTASTSErr %v, want reason %q", res.MTASTSErr, tc.wantErr)
			}
			if !strings.Contains(rec.text(), tc.wantNote) {
				t.Errorf("transcript lacks %q:\n%s", tc.wantNote, rec.text())
			}
			if res.TLSRPT != nil || res.TLSRPTErr != nil {
				t.Errorf("TLS-RPT looked up without being asked: %+v %v", res.TLSRPT, res.TLSRPTErr)
			}
		})
	}

	t.Run("the policy refuses the mta-sts host: nothing is dialled", func(t *testing.T) {
		ps := policytest.Start(t, policytest.Handler(policy("enforce", "mx.example.test")))
		smtpSrv := startCountingSMTP(t, mxPKI.Server)
		hookErr := errors.New("no policy fetches today")
		opts := baseOptions()
		opts.TLS, opts.Resolver = smtp.TLSStartTLS, mxSTSZone(t, record, "")
		opts.CheckAddr = func(host string, _ netip.Addr) error {
			if host == "mta-sts.example.test" {
				return hookErr
			}
			return nil
		}
		opts.MTASTS = &mtasts.Options{TLSConfig: &tls.Config{RootCAs: ps.PKI.Pool}, Port: ps.Port}
		res, err := probeMXWith(t.Context(), "example.test", smtpSrv.Port, opts, 5)
		if !errors.Is(err, smtp.ErrPolicy) || !errors.Is(err, hookErr) || !errors.Is(err, mtasts.ErrRefused) {
			t.Fatalf("err %v, want one wrapping smtp.ErrPolicy, mtasts.ErrRefused and the hook's error", err)
		}
		if res.Err == nil || res.Err != res.MTASTSErr || res.Err.Phase != PhaseMTASTS || res.Err.Reason != smtp.ReasonPolicy {
			t.Errorf("Err %v, MTASTSErr %v: want the same refusal (mta_sts, policy)", res.Err, res.MTASTSErr)
		}
		if len(res.Hosts) != 1 || res.Hosts[0].Result.Err == nil || res.Hosts[0].Result.Err.Reason != smtp.ReasonPolicy || res.Success(config.MXSuccessAny) {
			t.Errorf("hosts %+v", res.Hosts)
		}
		if n, m := smtpSrv.conns.Load(), ps.Conns.Load(); n != 0 || m != 0 {
			t.Errorf("%d SMTP and %d HTTPS connections, want none", n, m)
		}
	})
}

func TestProbeMXTLSRPT(t *testing.T) {
	mxPKI := testpki.Valid(t, "mx.example.test")
	for _, tc := range []struct {
		name, txt string
		present   bool
		wantNote  string
	}{
		{name: "a valid record", txt: "v=TLSRPTv1; rua=mailto:tlsrpt@example.test", present: true, wantNote: "rua mailto:tlsrpt@example.test"},
		{name: "an invalid record", txt: "v=TLSRPTv1; rua=ftp://x", wantNote: "no valid record"},
		{name: "no record", wantNote: "no record at _smtp._tls.example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smtpSrv := startCountingSMTP(t, mxPKI.Server)
			rec := &recorder{}
			opts := baseOptions()
			opts.TLS, opts.TLSRPT, opts.Transcript = smtp.TLSStartTLS, true, rec.add
			opts.Resolver = mxSTSZone(t, "", tc.txt)
			opts.TLSConfig = &tls.Config{RootCAs: mxPKI.Pool}
			res, err := probeMXWith(t.Context(), "example.test", smtpSrv.Port, opts, 5)
			if err != nil || !res.Success(config.MXSuccessAll) || res.TLSRPT == nil || res.TLSRPTErr != nil {
				t.Fatalf("result %+v, err %v", res, err)
			}
			smtpSrv.Wait(t)
			if (res.TLSRPT.Record != nil) != tc.present {
				t.Errorf("record %+v (%v), want present %t", res.TLSRPT.Record, res.TLSRPT.Err, tc.present)
			}
			if !strings.Contains(rec.text(), tc.wantNote) {
				t.Errorf("transcript lacks %q:\n%s", tc.wantNote, rec.text())
			}
		})
	}
	t.Run("a failed lookup is reported, not a failure", func(t *testing.T) {
		smtpSrv := startCountingSMTP(t, mxPKI.Server)
		resolver := dnstest.StartSec(t, dnstest.SecZone{
			Records:  map[string][]string{"example.test. MX": {"10 mx.example.test."}, "mx.example.test. A": {"127.0.0.1"}},
			ServFail: map[string]bool{"_smtp._tls.example.test.": true},
		})
		opts := baseOptions()
		opts.TLS, opts.TLSRPT, opts.Resolver = smtp.TLSStartTLS, true, resolver
		opts.TLSConfig = &tls.Config{RootCAs: mxPKI.Pool}
		res, err := probeMXWith(t.Context(), "example.test", smtpSrv.Port, opts, 5)
		if err != nil || !res.Success(config.MXSuccessAll) || res.TLSRPT != nil || !errors.Is(res.TLSRPTErr, dnssec.ErrServFail) {
			t.Fatalf("result %+v, err %v, TLSRPTErr %v", res, err, res.TLSRPTErr)
		}
		smtpSrv.Wait(t)
	})
}

// TestProbeMXAllAddresses checks one MXHost per exchanger and address, and
// that every address of every exchanger is vetted before any is dialled.
func TestProbeMXAllAddresses(t *testing.T) {
	var srvA, srvB *countingSMTP
	pki := testpki.Valid(t, "mx.example.test", "mx2.example.test")
	for try := 0; srvB == nil; try++ {
		srvA = startCountingSMTP(t, pki.Server)
		srvB = &countingSMTP{}
		fs, err := smtptest.NewFakeOn(t, fmt.Sprintf("127.0.0.2:%d", srvA.Port), func(c *smtptest.Conn) error {
			srvB.conns.Add(1)
			return smtptest.Script(nil, "S: 421 4.3.2 going down", "C: QUIT", "S: 221 bye")(c)
		})
		if err != nil {
			srvB = nil
			if try == 20 {
				t.Fatalf("no port free on 127.0.0.1 and 127.0.0.2: %v", err)
			}
			continue
		}
		srvB.Fake = fs
	}
	resolver := dnstest.StartSec(t, dnstest.SecZone{Records: map[string][]string{
		"example.test. MX":    {"10 mx.example.test.", "20 mx2.example.test."},
		"mx.example.test. A":  {"127.0.0.1", "127.0.0.2"},
		"mx2.example.test. A": {"127.0.0.1"},
		"refused.test. MX":    {"10 mx.example.test.", "20 mx3.example.test."},
		"mx3.example.test. A": {"127.0.0.1", "127.0.0.3"},
	}})
	rec := &recorder{}
	opts := baseOptions()
	opts.AllAddresses, opts.Resolver, opts.Transcript = true, resolver, rec.add
	opts.TLS, opts.TLSConfig = smtp.TLSStartTLS, &tls.Config{RootCAs: pki.Pool}
	res, err := probeMXWith(t.Context(), "example.test", srvA.Port, opts, 5)
	if err != nil || res.Err != nil || len(res.Hosts) != 3 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	for i, want := range []struct {
		name string
		pref uint16
		addr string
		ok   bool
	}{{"mx.example.test", 10, "127.0.0.1", true}, {"mx.example.test", 10, "127.0.0.2", false}, {"mx2.example.test", 20, "127.0.0.1", true}} {
		h := res.Hosts[i]
		if h.Name != want.name || h.Preference != want.pref || h.Result.Addr.Addr().String() != want.addr || h.Result.Success() != want.ok {
			t.Errorf("host %d: %s %d %s %v; want %+v", i, h.Name, h.Preference, h.Result.Addr, h.Result.Err, want)
		}
	}
	for mode, want := range map[config.MXSuccess]bool{config.MXSuccessAll: false, config.MXSuccessAny: true, config.MXSuccessPrimary: false} {
		if got := res.Success(mode); got != want {
			t.Errorf("Success(%s) = %t, want %t", mode, got, want)
		}
	}
	for _, host := range []string{"mx.example.test 127.0.0.1", "mx.example.test 127.0.0.2", "mx2.example.test"} {
		if !strings.Contains(rec.text(), "["+host+"] C: EHLO") && !strings.Contains(rec.text(), "["+host+"] C: QUIT") {
			t.Errorf("no dialog lines for %q:\n%s", host, rec.text())
		}
	}

	t.Run("an address of another exchanger refused: nothing dialled", func(t *testing.T) {
		before := srvA.conns.Load() + srvB.conns.Load()
		o := *opts
		o.Transcript = nil
		o.CheckAddr = func(host string, a netip.Addr) error {
			if a == netip.MustParseAddr("127.0.0.3") {
				return fmt.Errorf("%s: %s is not allowed", host, a)
			}
			return nil
		}
		res, err := probeMXWith(t.Context(), "refused.test", srvA.Port, &o, 5)
		if !errors.Is(err, smtp.ErrPolicy) || len(res.Hosts) != 2 {
			t.Fatalf("result %+v, err %v", res, err)
		}
		if n := srvA.conns.Load() + srvB.conns.Load() - before; n != 0 {
			t.Errorf("%d connections, want none", n)
		}
	})
}
