package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// startOnAll starts one smtptest server of mode on each of ips, all on the
// same port (a free one: tried until one is free on every address).
func startOnAll(t *testing.T, mode string, ips ...string) (port uint16, servers []*smtptest.Server) {
	t.Helper()
	for try := 0; ; try++ {
		first := smtptest.Start(t, mode)
		_, p, _ := net.SplitHostPort(first.Addr)
		servers = []*smtptest.Server{first}
		var err error
		for _, ip := range ips[1:] {
			var s *smtptest.Server
			if s, err = smtptest.StartOn(t, mode, net.JoinHostPort(ip, p)); err != nil {
				break
			}
			servers = append(servers, s)
		}
		if err == nil {
			var n int
			fmt.Sscan(p, &n)
			return uint16(n), servers
		}
		if try == 20 {
			t.Fatalf("no port free on all of %v after %d tries: %v", ips, try, err)
		}
	}
}

func TestProbeHostAllAddresses(t *testing.T) {
	port, servers := startOnAll(t, smtptest.OK, "127.0.0.1", "127.0.0.2")
	resolver := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"two.test. A":  {"127.0.0.2", "127.0.0.1", "127.0.0.2"},
		"one.test. A":  {"127.0.0.1"},
		"many.test. A": {"127.0.0.1", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8", "127.0.0.9", "127.0.0.10"},
	}, NXDomain: []string{"nx.test."}}).Addr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	newOpts := func(all bool) (*pathOptions, *recorder) {
		rec := &recorder{}
		o := baseOptions()
		o.Resolver, o.AllAddresses, o.Transcript = resolver, all, rec.add
		return o, rec
	}

	t.Run("two addresses, each its own dialog", func(t *testing.T) {
		opts, rec := newOpts(true)
		// Each dialog takes a slot, and both are admitted together: each
		// waits for the other (a sequential probe would time out here).
		var admitted atomic.Int32
		both := make(chan struct{})
		opts.Admit = func(ctx context.Context) (func(), error) {
			if admitted.Add(1) == 2 {
				close(both)
			}
			select {
			case <-both:
				return func() {}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		before := servers[0].Accepted.Load() + servers[1].Accepted.Load()
		results, _, err := probeHostWith(ctx, "two.test", port, opts)
		if err != nil || len(results) != 2 {
			t.Fatalf("results %v, err %v", results, err)
		}
		for i, want := range []string{"127.0.0.2", "127.0.0.1"} {
			r := results[i]
			if r.Addr.Addr().String() != want || r.Addr.Port() != port || !r.Success() || r.Host != "two.test" || r.IPProtocol != 4 {
				t.Errorf("result %d: %s %s %v, want %s", i, r.Host, r.Addr, r.Err, want)
			}
			if got := phases(r); got != "resolve connect banner ehlo quit" {
				t.Errorf("result %d phases %q", i, got)
			}
		}
		if n := servers[0].Accepted.Load() + servers[1].Accepted.Load() - before; n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
		if got := rec.hosts(); !slices.Equal(got, []string{"", "two.test 127.0.0.1", "two.test 127.0.0.2"}) {
			t.Errorf("transcript hosts %q\n%s", got, rec.text())
		}
	})
	t.Run("without AllAddresses: one result, the first address", func(t *testing.T) {
		opts, _ := newOpts(false)
		results, _, err := probeHostWith(ctx, "two.test", port, opts)
		if err != nil || len(results) != 1 || !results[0].Success() || results[0].Addr.Addr().String() != "127.0.0.2" {
			t.Fatalf("results %+v, err %v", results, err)
		}
	})
	t.Run("at most smtp.MaxAddresses", func(t *testing.T) {
		opts, rec := newOpts(true)
		opts.CheckAddr = func(string, netip.Addr) error { return nil }
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		results, _, err := probeHostWith(ctx, "many.test", port, opts)
		if err != nil || len(results) != smtp.MaxAddresses {
			t.Fatalf("%d results, err %v", len(results), err)
		}
		if !strings.Contains(rec.text(), "has 9 addresses: probing the first 8") {
			t.Errorf("no note of the cap:\n%s", rec.text())
		}
	})
	t.Run("one address refused: nothing dialled", func(t *testing.T) {
		opts, _ := newOpts(true)
		hookErr := errors.New("not that one")
		opts.CheckAddr = func(_ string, a netip.Addr) error {
			if a == netip.MustParseAddr("127.0.0.1") {
				return hookErr
			}
			return nil
		}
		before := servers[0].Accepted.Load() + servers[1].Accepted.Load()
		results, _, err := probeHostWith(ctx, "two.test", port, opts)
		if !errors.Is(err, smtp.ErrPolicy) || !errors.Is(err, hookErr) || len(results) != 1 || results[0].Err == nil ||
			results[0].Err.Reason != smtp.ReasonPolicy {
			t.Fatalf("results %v, err %v", results, err)
		}
		if n := servers[0].Accepted.Load() + servers[1].Accepted.Load() - before; n != 0 {
			t.Errorf("%d connections, want none", n)
		}
	})
	t.Run("a name that does not resolve: one failed result", func(t *testing.T) {
		opts, _ := newOpts(true)
		results, _, err := probeHostWith(ctx, "nx.test", port, opts)
		if err != nil || len(results) != 1 || results[0].Err == nil || results[0].Err.Reason != smtp.ReasonResolve {
			t.Fatalf("results %v, err %v", results, err)
		}
	})
	t.Run("an IP literal is one address", func(t *testing.T) {
		opts, _ := newOpts(true)
		results, _, err := probeHostWith(ctx, "127.0.0.2", port, opts)
		if err != nil || len(results) != 1 || !results[0].Success() {
			t.Fatalf("results %v, err %v", results, err)
		}
	})
}

func TestProbeHostIPv4AndIPv6(t *testing.T) {
	testenv.Require(t, testenv.IPv6Loopback(), "no IPv6 loopback ([::1]) on this host")
	port, _ := startOnAll(t, smtptest.OK, "127.0.0.1", "::1")
	opts := baseOptions()
	opts.AllAddresses = true
	opts.IPProtocol = "ip6" // ignored with AllAddresses
	opts.Resolver = dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"dual.test. A":    {"127.0.0.1"},
		"dual.test. AAAA": {"::1"},
	}}).Addr
	results, _, err := probeHostWith(t.Context(), "dual.test", port, opts)
	if err != nil || len(results) != 2 {
		t.Fatalf("results %v, err %v", results, err)
	}
	for i, want := range []int{4, 6} {
		if r := results[i]; !r.Success() || r.IPProtocol != want {
			t.Errorf("result %d: %s IPv%d %v, want IPv%d", i, r.Addr, r.IPProtocol, r.Err, want)
		}
	}
}
