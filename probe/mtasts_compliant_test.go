package probe

import (
	"crypto/tls"
	"net/http"
	"strconv"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/policytest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestMTASTSCompliant: with a policy, each exchanger is judged by its
// checks (an mx pattern matches, the certificate is valid for its name)
// whatever the mode, so that a host that would fail enforce shows in
// testing mode too; without a policy there is no verdict.
func TestMTASTSCompliant(t *testing.T) {
	mxPKI := testpki.Valid(t, "mx.example.test")
	policy := func(mode string, mx string) http.HandlerFunc {
		return policytest.Handler("version: STSv1\r\nmode: " + mode + "\r\nmx: " + mx + "\r\nmax_age: 86400\r\n")
	}
	const record = "v=STSv1; id=20260101;"
	for _, tc := range []struct {
		name       string
		record     string
		handler    http.HandlerFunc
		untrusted  bool
		want       string // "1", "0", or "" for no verdict
		wantFailed bool
	}{
		{name: "enforce, listed, valid", record: record, handler: policy("enforce", "mx.example.test"), want: "1"},
		{name: "enforce, not listed", record: record, handler: policy("enforce", "mx.elsewhere.test"), want: "0", wantFailed: true},
		{name: "testing, not listed", record: record, handler: policy("testing", "mx.elsewhere.test"), want: "0"},
		{name: "testing, listed, certificate not valid", record: record, handler: policy("testing", "*.example.test"), untrusted: true, want: "0", wantFailed: true},
		{name: "testing, listed, valid", record: record, handler: policy("testing", "*.example.test"), want: "1"},
		{name: "none, listed, valid", record: record, handler: policy("none", "mx.example.test"), want: "1"},
		{name: "none, not listed", record: record, handler: policy("none", "mx.elsewhere.test"), want: "0"},
		{name: "no policy", handler: policy("enforce", "mx.elsewhere.test")},
		{name: "a policy that cannot be fetched", record: record, handler: http.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := policytest.Start(t, tc.handler)
			smtpSrv := startCountingSMTP(t, mxPKI.Server)
			opts := baseOptions()
			opts.TLS, opts.Resolver = smtp.TLSStartTLS, mxSTSZone(t, tc.record, "")
			opts.TLSConfig = &tls.Config{RootCAs: mxPKI.Pool}
			if tc.untrusted {
				opts.TLSConfig = &tls.Config{RootCAs: testpki.Valid(t, "other.test").Pool}
			}
			opts.MTASTS = &mtasts.Options{TLSConfig: &tls.Config{RootCAs: ps.PKI.Pool}, Port: ps.Port}
			res, err := probeMXWith(t.Context(), "example.test", smtpSrv.Port, opts, 5)
			if err != nil || res.Err != nil || len(res.Hosts) != 1 {
				t.Fatalf("result %+v, err %v", res, err)
			}
			smtpSrv.Wait(t)
			h := res.Hosts[0]
			got := ""
			if h.MTASTSCompliant != nil {
				got = map[bool]string{true: "1", false: "0"}[*h.MTASTSCompliant]
			}
			if got != tc.want {
				t.Errorf("compliant %q, want %q", got, tc.want)
			}
			if failed := h.Result.Err != nil; failed != tc.wantFailed {
				t.Errorf("probe failed: %v, want failed %t", h.Result.Err, tc.wantFailed)
			}
			o := &Outcome{Target: Target{Plan: &Plan{}}}
			o.fromMX(res, "")
			if c := o.Hosts[0].MTASTSCompliant; (c == nil) != (tc.want == "") || c != nil && *c != (tc.want == "1") {
				t.Errorf("the outcome's row says %v, want %q", c, tc.want)
			}
		})
	}
}

// TestMTASTSCompliantUnresolvedHost: an exchanger that could not be
// probed shows no certificate, so it does not pass the policy.
func TestMTASTSCompliantUnresolvedHost(t *testing.T) {
	ps := policytest.Start(t, policytest.Handler("version: STSv1\r\nmode: testing\r\nmx: *.example.test\r\nmax_age: 86400\r\n"))
	opts := baseOptions()
	opts.TLS = smtp.TLSStartTLS
	opts.Resolver = dnstest.StartSec(t, dnstest.SecZone{Records: map[string][]string{
		"example.test. MX":           {"10 gone.example.test."},
		"mta-sts.example.test. A":    {"127.0.0.1"},
		"_mta-sts.example.test. TXT": {strconv.Quote("v=STSv1; id=1;")},
	}})
	opts.MTASTS = &mtasts.Options{TLSConfig: &tls.Config{RootCAs: ps.PKI.Pool}, Port: ps.Port}
	res, err := probeMXWith(t.Context(), "example.test", 25, opts, 5)
	if err != nil || len(res.Hosts) != 1 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	h := res.Hosts[0]
	if h.Result.Err == nil || h.Result.Err.Reason != smtp.ReasonResolve || h.MTASTSCompliant == nil || *h.MTASTSCompliant {
		t.Errorf("host %s: err %v, compliant %v; want a resolve failure judged not compliant", h.Name, h.Result.Err, h.MTASTSCompliant)
	}
}
