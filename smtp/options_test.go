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

// splitAddr splits "127.0.0.1:port".
func splitAddr(t testing.TB, addr string) (string, uint16) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return host, uint16(p)
}

func TestProbePolicyRefusalWrapsErrPolicy(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	host, port := splitAddr(t, srv.Addr)
	hookErr := errors.New("denied by rule 3")
	opts := baseOptions()
	opts.CheckAddr = func(string, netip.Addr) error { return hookErr }
	admitted := 0
	opts.Admit = func(context.Context) (func(), error) { admitted++; return func() {}, nil }
	res, err := Probe(t.Context(), host, port, opts)
	var perr *Error
	if !errors.Is(err, ErrPolicy) || !errors.Is(err, hookErr) || !errors.As(err, &perr) || perr.Reason != ReasonPolicy || res.Err != perr {
		t.Fatalf("err = %v, want a policy *Error wrapping ErrPolicy and the hook's error", err)
	}
	if n := srv.Accepted.Load(); n != 0 || admitted != 0 {
		t.Errorf("accepted %d connections, admitted %d; want none", n, admitted)
	}
}

// TestProbeAdmit: each connection takes a slot before its dial and gives it
// back once closed; a refusal fails the host with overload, or timeout when
// the context is done.
func TestProbeAdmit(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	host, port := splitAddr(t, srv.Addr)
	t.Run("a slot per connection, released", func(t *testing.T) {
		var mu sync.Mutex
		held, maxHeld, calls := 0, 0, 0
		opts := baseOptions()
		opts.Admit = func(context.Context) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			held++
			maxHeld = max(maxHeld, held)
			return func() { mu.Lock(); held--; mu.Unlock() }, nil
		}
		if _, err := Probe(t.Context(), host, port, opts); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 1 || held != 0 || maxHeld != 1 {
			t.Errorf("admit called %d times (want 1), %d slots still held, at most %d", calls, held, maxHeld)
		}
	})
	t.Run("refused: overload, nothing dialled", func(t *testing.T) {
		before := srv.Accepted.Load()
		opts := baseOptions()
		opts.Admit = func(context.Context) (func(), error) { return nil, errors.New("all 50 slots in use") }
		res, err := Probe(t.Context(), host, port, opts)
		var perr *Error
		if !errors.As(err, &perr) || perr.Phase != PhaseConnect || perr.Reason != ReasonOverload || !strings.Contains(err.Error(), "all 50 slots") {
			t.Fatalf("err = %v, want connect/overload", err)
		}
		if phases(res) != "resolve connect" || srv.Accepted.Load() != before {
			t.Errorf("phases %q, accepted %d more", phases(res), srv.Accepted.Load()-before)
		}
	})
	t.Run("refused after the deadline: timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		opts := baseOptions()
		opts.Admit = func(ctx context.Context) (func(), error) { <-ctx.Done(); return nil, ctx.Err() }
		_, err := Probe(ctx, host, port, opts)
		var perr *Error
		if !errors.As(err, &perr) || perr.Phase != PhaseConnect || perr.Reason != ReasonTimeout {
			t.Fatalf("err = %v, want connect/timeout", err)
		}
	})
}

// TestResolverNamedInErrors: a failed resolution names the resolver asked.
func TestResolverNamedInErrors(t *testing.T) {
	dns := dnstest.Start(t, dnstest.Zone{NXDomain: []string{"nx.test."}})
	opts := baseOptions()
	opts.Resolver = dns.Addr
	_, err := Probe(t.Context(), "nx.test", 25, opts)
	if err == nil || !strings.Contains(err.Error(), "via "+dns.Addr) {
		t.Errorf("err = %v, want it to name %s", err, dns.Addr)
	}
	// Go's DNSError names the system's server; it was not asked.
	if err != nil && strings.Count(err.Error(), " on ") > 0 {
		t.Errorf("err = %v names another server", err)
	}
	o := baseOptions()
	if got := o.ResolveError("resolving x", errors.New("boom")).Error(); got != "resolving x via the system resolver: boom" {
		t.Errorf("system resolver error = %q", got)
	}
}
