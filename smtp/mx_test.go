package smtp

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

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// resolverFor asks the test DNS server at addr.
func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// twoExchangers starts a good server on 127.0.0.1 and a busy one on ::1, on
// the same port (MX hosts share the module's port).
func twoExchangers(t *testing.T) uint16 {
	good := newFakeServer(t, "tcp4", script(nil, "S: 220 mx1", "C: EHLO probe.test", "S: 250 mx1", "C: QUIT", "S: 221 bye"))
	if _, err := smtptest.StartOn(t, smtptest.ShutDown, net.JoinHostPort("::1", strconv.Itoa(int(good.port)))); err != nil {
		t.Skipf("no IPv6 loopback (or port taken) for the second exchanger: %v", err)
	}
	return good.port
}

func TestProbeMX(t *testing.T) {
	port := twoExchangers(t)
	dnsSrv := dnstest.Start(t, dnstest.Zone{
		Records: map[string][]string{
			"example.test. MX":       {"20 mx2.example.test.", "10 mx1.example.test."},
			"mx1.example.test. A":    {"127.0.0.1"},
			"mx2.example.test. AAAA": {"::1"},
			"null.test. MX":          {"0 ."},
			"nomx.test. A":           {"127.0.0.1"},
			"many.test. MX":          {"10 mx1.example.test.", "20 mx1.example.test.", "30 mx1.example.test."},
		},
		NXDomain: []string{"nx.test."},
	})
	opts := baseOptions()
	opts.Resolver = resolverFor(dnsSrv.Addr)
	opts.IPProtocolFallback = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("two exchangers, one broken", func(t *testing.T) {
		res := ProbeMX(ctx, "example.test", port, opts, 5)
		if res.Err != nil || res.Found != 2 || len(res.Hosts) != 2 || res.Implicit {
			t.Fatalf("result = %+v", res)
		}
		if h := res.Hosts[0]; h.Name != "mx1.example.test" || h.Preference != 10 || !h.Result.Success() {
			t.Errorf("first host = %s %d %v", h.Name, h.Preference, h.Result.Err)
		}
		h := res.Hosts[1]
		if h.Name != "mx2.example.test" || h.Preference != 20 || h.Result.Err == nil || h.Result.Err.Reason != Reason4xx || h.Result.IPProtocol != 6 {
			t.Errorf("second host = %s %d %v ip%d", h.Name, h.Preference, h.Result.Err, h.Result.IPProtocol)
		}
		for mode, want := range map[string]bool{MXSuccessAll: false, MXSuccessAny: true, MXSuccessPrimary: true} {
			if got := res.Success(mode); got != want {
				t.Errorf("Success(%s) = %t, want %t", mode, got, want)
			}
		}
	})
	t.Run("null MX", func(t *testing.T) {
		res := ProbeMX(ctx, "null.test", port, opts, 5)
		if res.Err == nil || res.Err.Reason != ReasonNullMX || len(res.Hosts) != 0 || res.Success(MXSuccessAny) {
			t.Errorf("result = %+v, err %v", res, res.Err)
		}
	})
	t.Run("no MX: the domain is its own exchanger", func(t *testing.T) {
		res := ProbeMX(ctx, "nomx.test", port, opts, 5)
		if !res.Implicit || len(res.Hosts) != 1 || res.Hosts[0].Name != "nomx.test" || !res.Success(MXSuccessAll) {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("no such domain", func(t *testing.T) {
		res := ProbeMX(ctx, "nx.test", port, opts, 5)
		if len(res.Hosts) != 1 || res.Hosts[0].Result.Err == nil || res.Hosts[0].Result.Err.Reason != ReasonResolve || res.Success(MXSuccessAny) {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("limited to mx_max_hosts", func(t *testing.T) {
		res := ProbeMX(ctx, "many.test", port, opts, 2)
		if res.Found != 3 || len(res.Hosts) != 2 || res.Hosts[1].Preference != 20 {
			t.Errorf("found %d, probed %d", res.Found, len(res.Hosts))
		}
	})
	t.Run("the address policy applies to every exchanger", func(t *testing.T) {
		o := *opts
		o.CheckAddr = func(_ string, a netip.Addr) error {
			if a.Is6() {
				return errors.New("no IPv6 here")
			}
			return nil
		}
		res := ProbeMX(ctx, "example.test", port, &o, 5)
		if e := res.Hosts[1].Result.Err; e == nil || e.Reason != ReasonPolicy {
			t.Errorf("second host err = %v, want policy", e)
		}
	})
	t.Run("transcript names each host", func(t *testing.T) {
		var mu sync.Mutex
		var lines []string
		o := *opts
		o.Transcript = func(l TranscriptLine) { mu.Lock(); lines = append(lines, l.String()); mu.Unlock() }
		ProbeMX(ctx, "example.test", port, &o, 5)
		all := strings.Join(lines, "\n")
		for _, w := range []string{"MX 10 mx1.example.test", "[mx1.example.test] S: 220 mx1", "[mx2.example.test] S: 421 4.3.2", "[mx2.example.test] C: QUIT", "[mx2.example.test] S: 221 2.0.0 Bye"} {
			if !strings.Contains(all, w) {
				t.Errorf("transcript lacks %q:\n%s", w, all)
			}
		}
	})
}
