package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// mxZone is the test zone: every exchanger that has an address has
// 127.0.0.1 (MX hosts share the module's port, so one server stands for all
// of them), except mx6, which has ::1.
var mxZone = dnstest.Zone{
	Records: map[string][]string{
		"example.test. MX":       {"20 noaddr.example.test.", "10 mx1.example.test."},
		"mx1.example.test. A":    {"127.0.0.1"},
		"mx2.example.test. A":    {"127.0.0.1"},
		"mx6.example.test. AAAA": {"::1"},
		"null.test. MX":          {"0 ."},
		"nomx.test. A":           {"127.0.0.1"},
		"many.test. MX":          {"10 mx1.example.test.", "20 mx2.example.test.", "30 mx3.example.test."},
		"mx3.example.test. A":    {"127.0.0.1"},
		"two.test. MX":           {"10 mx1.example.test.", "20 mx2.example.test."},
		"six.test. MX":           {"10 mx1.example.test.", "20 mx6.example.test."},
		"ties.test. MX":          {"10 mxd.ties.test.", "10 mxb.ties.test.", "10 mxa.ties.test.", "10 mxc.ties.test.", "5 mx0.ties.test."},
	},
	NXDomain: []string{"nx.test.", "noaddr.example.test."},
}

func mxOptions(t *testing.T) *pathOptions {
	t.Helper()
	opts := baseOptions()
	opts.Resolver = dnstest.Start(t, mxZone).Addr
	opts.IPProtocolFallback = true
	return opts
}

func TestProbeMX(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, portStr, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(portStr)
	port := uint16(p)
	opts := mxOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("two exchangers, one without an address", func(t *testing.T) {
		res, err := probeMXWith(ctx, "example.test", port, opts, 5)
		if err != nil || res.Err != nil || res.Found != 2 || len(res.Hosts) != 2 || res.Implicit {
			t.Fatalf("result = %+v, err %v", res, err)
		}
		if h := res.Hosts[0]; h.Name != "mx1.example.test" || h.Preference != 10 || !h.Result.Success() || h.Result.IPProtocol != 4 {
			t.Errorf("first host = %s %d %v", h.Name, h.Preference, h.Result.Err)
		}
		h := res.Hosts[1]
		if h.Name != "noaddr.example.test" || h.Preference != 20 || h.Result.Err == nil || h.Result.Err.Reason != smtp.ReasonResolve {
			t.Errorf("second host = %s %d %v", h.Name, h.Preference, h.Result.Err)
		}
		for mode, want := range map[config.MXSuccess]bool{config.MXSuccessAll: false, config.MXSuccessAny: true, config.MXSuccessPrimary: true} {
			if got := res.Success(mode); got != want {
				t.Errorf("Success(%s) = %t, want %t", mode, got, want)
			}
		}
	})
	t.Run("null MX", func(t *testing.T) {
		res, err := probeMXWith(ctx, "null.test", port, opts, 5)
		if err != nil || res.Err == nil || res.Err.Reason != smtp.ReasonNullMX || len(res.Hosts) != 0 || res.Success(config.MXSuccessAny) {
			t.Errorf("result = %+v, err %v / %v", res, res.Err, err)
		}
	})
	t.Run("no MX: the domain is its own exchanger", func(t *testing.T) {
		res, err := probeMXWith(ctx, "nomx.test", port, opts, 5)
		if err != nil || !res.Implicit || len(res.Hosts) != 1 || res.Hosts[0].Name != "nomx.test" || !res.Success(config.MXSuccessAll) {
			t.Errorf("result = %+v, err %v", res, err)
		}
	})
	t.Run("no such domain", func(t *testing.T) {
		res, err := probeMXWith(ctx, "nx.test", port, opts, 5)
		if err != nil || len(res.Hosts) != 1 || res.Hosts[0].Result.Err == nil || res.Hosts[0].Result.Err.Reason != smtp.ReasonResolve || res.Success(config.MXSuccessAny) {
			t.Errorf("result = %+v, err %v", res, err)
		}
	})
	t.Run("limited to mx_max_hosts", func(t *testing.T) {
		res, err := probeMXWith(ctx, "many.test", port, opts, 2)
		if err != nil || res.Found != 3 || len(res.Hosts) != 2 || res.Hosts[1].Preference != 20 {
			t.Errorf("found %d, probed %d, err %v", res.Found, len(res.Hosts), err)
		}
	})
	t.Run("ties broken by name: a stable subset", func(t *testing.T) {
		// Go shuffles equal preferences; ten lookups would show it.
		for range 10 {
			res, err := probeMXWith(ctx, "ties.test", port, opts, 3)
			if err != nil || res.Found != 5 || len(res.Hosts) != 3 {
				t.Fatalf("result = %+v, err %v", res, err)
			}
			var names []string
			for _, h := range res.Hosts {
				names = append(names, h.Name)
			}
			if got := strings.Join(names, " "); got != "mx0.ties.test mxa.ties.test mxb.ties.test" {
				t.Fatalf("probed %s, want mx0, mxa and mxb", got)
			}
		}
	})
	t.Run("transcript names each host", func(t *testing.T) {
		var lines []string // no lock: ProbeMX serialises the calls
		o := *opts
		o.Transcript = func(l smtp.TranscriptLine) { lines = append(lines, l.String()) }
		if _, err := probeMXWith(ctx, "two.test", port, &o, 5); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(lines, "\n")
		for _, w := range []string{"MX 10 mx1.example.test", "MX 20 mx2.example.test", "[mx1.example.test] S: 220 fake.test ESMTP",
			"[mx2.example.test] C: QUIT", "[mx2.example.test] S: 221 2.0.0 Bye", "via " + opts.Resolver} {
			if !strings.Contains(all, w) {
				t.Errorf("transcript lacks %q:\n%s", w, all)
			}
		}
	})
}

// TestProbeMXPolicyDialsNothing: every address of every exchanger passes the
// policy before any is dialled; one refusal refuses the domain.
func TestProbeMXPolicyDialsNothing(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, portStr, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(portStr)
	opts := mxOptions(t)
	var mu sync.Mutex // CheckAddr runs concurrently for the exchangers
	var checked []string
	hookErr := errors.New("rule deny-mx2")
	opts.CheckAddr = func(host string, a netip.Addr) error {
		mu.Lock()
		checked = append(checked, host+"="+a.String())
		mu.Unlock()
		if host == "mx2.example.test" {
			return hookErr
		}
		return nil
	}
	res, err := probeMXWith(t.Context(), "two.test", uint16(p), opts, 5)
	if !errors.Is(err, smtp.ErrPolicy) || !errors.Is(err, hookErr) {
		t.Fatalf("err = %v, want one wrapping smtp.ErrPolicy and the hook's error", err)
	}
	var perr *smtp.Error
	if !errors.As(err, &perr) || perr != res.Err || perr.Reason != smtp.ReasonPolicy {
		t.Errorf("err = %#v, want MXResult.Err (%v) with reason policy", err, res.Err)
	}
	if n := srv.Accepted.Load(); n != 0 {
		t.Errorf("the server accepted %d connections, want none", n)
	}
	if len(checked) != 2 {
		t.Errorf("policy saw %v, want both exchangers", checked)
	}
	if len(res.Hosts) != 2 || res.Success(config.MXSuccessAny) {
		t.Fatalf("hosts = %+v", res.Hosts)
	}
	for _, h := range res.Hosts {
		if e := h.Result.Err; e == nil || e.Reason != smtp.ReasonPolicy || !errors.Is(e, smtp.ErrPolicy) || phases(h.Result) != "resolve" {
			t.Errorf("host %s: err %v, phases %q; want policy after resolve only", h.Name, e, phases(h.Result))
		}
	}
}

func TestProbeMXIPv6Exchanger(t *testing.T) {
	testenv.Require(t, testenv.IPv6Loopback(), "no IPv6 loopback ([::1]) on this host")
	// MX hosts share the port: find one free on both loopbacks.
	var busy *smtptest.Server
	var portStr string
	for try := 0; busy == nil; try++ {
		good := smtptest.Start(t, smtptest.OK)
		_, portStr, _ = net.SplitHostPort(good.Addr)
		var err error
		if busy, err = smtptest.StartOn(t, smtptest.ShutDown, net.JoinHostPort("::1", portStr)); err != nil && try == 20 {
			t.Fatalf("no port free on both 127.0.0.1 and [::1] after %d tries: %v", try, err)
		}
	}
	p, _ := strconv.Atoi(portStr)
	res, err := probeMXWith(t.Context(), "six.test", uint16(p), mxOptions(t), 5)
	if err != nil || len(res.Hosts) != 2 {
		t.Fatalf("result = %+v, err %v", res, err)
	}
	if h := res.Hosts[1]; h.Name != "mx6.example.test" || h.Result.IPProtocol != 6 || h.Result.Err == nil || h.Result.Err.Reason != smtp.Reason4xx {
		t.Errorf("second host = %s ip%d %v", h.Name, h.Result.IPProtocol, h.Result.Err)
	}
	if !res.Hosts[0].Result.Success() || busy.Accepted.Load() != 1 {
		t.Errorf("first host %v; IPv6 server accepted %d", res.Hosts[0].Result.Err, busy.Accepted.Load())
	}
}

// TestTranscriptSerialised: the exchanger probes of probeMX run
// concurrently, yet the transcript function is never entered twice at once
// (the race detector and the counter would see it).
func TestTranscriptSerialised(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, portStr, _ := net.SplitHostPort(srv.Addr)
	port := mustPort(t, portStr)
	opts := mxOptions(t)
	inside, overlaps, lines := 0, 0, 0
	opts.Transcript = func(smtp.TranscriptLine) {
		inside++
		if inside > 1 {
			overlaps++
		}
		lines++
		inside--
	}
	if _, err := probeMXWith(t.Context(), "many.test", port, opts, 3); err != nil {
		t.Fatal(err)
	}
	if overlaps != 0 || lines < 3*6 {
		t.Errorf("%d overlapping calls, %d lines", overlaps, lines)
	}
}

func mustPort(t *testing.T, s string) uint16 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// TestProbeMXAuthenticated checks probe_smtp_mx_lookup_authenticated's
// source: whether the resolver set the AD bit on the MX answer or on its
// denial, with the lookup's other behaviour unchanged.
func TestProbeMXAuthenticated(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, portStr, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(portStr)
	resolver := dnstest.StartSec(t, dnstest.SecZone{
		Records: map[string][]string{
			"secure.test. MX":      {"20 MX2.Secure.Test.", "10 mx1.secure.test."},
			"insecure.test. MX":    {"10 mx1.secure.test."},
			"mx1.secure.test. A":   {"127.0.0.1"},
			"mx2.secure.test. A":   {"127.0.0.1"},
			"nomx.secure.test. A":  {"127.0.0.1"},
			"null.secure.test. MX": {"0 ."},
		},
		Secure:   map[string]bool{"secure.test.": true, "nomx.secure.test.": true, "null.secure.test.": true},
		ServFail: map[string]bool{"bogus.test.": true},
	})
	for _, tc := range []struct {
		domain     string
		auth       bool
		hosts      string
		implicit   bool
		wantReason smtp.Reason
	}{
		{domain: "secure.test", auth: true, hosts: "mx1.secure.test mx2.secure.test"},
		{domain: "insecure.test", hosts: "mx1.secure.test"},
		{domain: "nomx.secure.test", auth: true, hosts: "nomx.secure.test", implicit: true},
		{domain: "null.secure.test", auth: true, wantReason: smtp.ReasonNullMX},
		{domain: "bogus.test", wantReason: smtp.ReasonResolve},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			opts := baseOptions()
			opts.Resolver = resolver
			var lines []string
			opts.Transcript = func(l smtp.TranscriptLine) { lines = append(lines, l.String()) }
			res, err := probeMXWith(t.Context(), tc.domain, uint16(p), opts, 5)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, h := range res.Hosts {
				names = append(names, h.Name)
			}
			if res.Authenticated != tc.auth || strings.Join(names, " ") != tc.hosts || res.Implicit != tc.implicit {
				t.Errorf("authenticated %t hosts %q implicit %t, want %t %q %t", res.Authenticated, names, res.Implicit, tc.auth, tc.hosts, tc.implicit)
			}
			if tc.wantReason != "" && (res.Err == nil || res.Err.Reason != tc.wantReason) {
				t.Errorf("err %v, want reason %s", res.Err, tc.wantReason)
			}
			transcript := strings.Join(lines, "\n")
			if tc.wantReason == smtp.ReasonResolve {
				if !strings.Contains(res.Err.Error(), "via "+resolver) {
					t.Errorf("the error does not name the resolver: %v", res.Err)
				}
			} else if !strings.Contains(transcript, "AD bit of resolver "+resolver+": "+strconv.FormatBool(tc.auth)) {
				t.Errorf("the transcript does not say whose AD bit was trusted:\n%s", transcript)
			}
			o := &Outcome{Target: Target{Plan: &Plan{MX: &MXPlan{}}}}
			o.fromMX(res, config.MXSuccessAll)
			if o.MXAuthenticated != tc.auth {
				t.Errorf("outcome: MX authenticated %t, want %t", o.MXAuthenticated, tc.auth)
			}
		})
	}
}
