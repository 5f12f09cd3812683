package smtp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// hostile servers: each must end the probe within its deadline with the
// right phase and reason.
func TestHostileServers(t *testing.T) {
	endless := func(c *smtptest.Conn, chunk string) error {
		b := []byte(strings.Repeat(chunk, 256))
		for {
			if _, err := c.Write(b); err != nil {
				return nil
			}
		}
	}
	tests := []struct {
		name       string
		handler    func(c *smtptest.Conn) error
		timeout    time.Duration
		fast       bool // must fail well before the timeout
		wantPhase  Phase
		wantReason Reason
	}{
		{name: "tarpit", timeout: 500 * time.Millisecond, wantPhase: PhaseBanner, wantReason: ReasonTimeout,
			handler: func(c *smtptest.Conn) error { c.ReadLine(); return nil }},
		{name: "drip-fed banner", timeout: 500 * time.Millisecond, wantPhase: PhaseBanner, wantReason: ReasonTimeout,
			handler: func(c *smtptest.Conn) error {
				for _, b := range []byte("220 " + strings.Repeat("x", 100)) {
					if _, err := c.Write([]byte{b}); err != nil {
						return nil
					}
					time.Sleep(50 * time.Millisecond)
				}
				return nil
			}},
		{name: "endless multi-line banner", timeout: 20 * time.Second, fast: true, wantPhase: PhaseBanner, wantReason: ReasonProtocol,
			handler: func(c *smtptest.Conn) error { return endless(c, "220-still greeting you\r\n") }},
		{name: "endless line", timeout: 20 * time.Second, fast: true, wantPhase: PhaseBanner, wantReason: ReasonProtocol,
			handler: func(c *smtptest.Conn) error { return endless(c, "aaaaaaaaaaaaaaaa") }},
		{name: "endless ehlo reply", timeout: 20 * time.Second, fast: true, wantPhase: PhaseEHLO, wantReason: ReasonProtocol,
			handler: func(c *smtptest.Conn) error {
				c.Send("220 mx\r\n")
				c.ReadLine()
				return endless(c, "250-PIPELINING\r\n")
			}},
		{name: "reset mid-dialog", timeout: 20 * time.Second, fast: true, wantPhase: PhaseEHLO, wantReason: ReasonClosed,
			handler: func(c *smtptest.Conn) error {
				c.Send("220 mx\r\n")
				c.ReadLine()
				c.Conn.(*net.TCPConn).SetLinger(0)
				return nil
			}},
		{name: "ssh on the port", timeout: 20 * time.Second, fast: true, wantPhase: PhaseBanner, wantReason: ReasonProtocol,
			handler: func(c *smtptest.Conn) error { c.Send("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"); c.ReadLine(); return nil }},
		{name: "stalls after ehlo", timeout: 500 * time.Millisecond, wantPhase: PhaseQuit, wantReason: ReasonTimeout,
			handler: smtptest.Script(nil, "S: 220 mx", "C: EHLO probe.test", "S: 250 mx", "C: QUIT", "DRAIN")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewFake(t, "tcp4", tc.handler)
			start := time.Now()
			_, err := probeFake(t, srv, baseOptions(), tc.timeout)
			elapsed := time.Since(start)
			var perr *Error
			if !errors.As(err, &perr) || perr.Phase != tc.wantPhase || perr.Reason != tc.wantReason {
				t.Fatalf("err = %v, want %s/%s", err, tc.wantPhase, tc.wantReason)
			}
			if limit := tc.timeout + 5*time.Second; elapsed > limit { // generous: catches a hang
				t.Errorf("took %s, past the %s deadline", elapsed, tc.timeout)
			}
			if tc.fast && elapsed > tc.timeout/2 {
				t.Errorf("took %s: a bounded failure must not wait for the timeout", elapsed)
			}
		})
	}
}

// TestHTTPServers: an HTTP server waits for a request and says nothing;
// since the probe never speaks first, it ends as a banner timeout. One that
// answers at once fails with protocol.
func TestHTTPServers(t *testing.T) {
	silent := httptest.NewServer(http.NotFoundHandler())
	defer silent.Close()
	addr := silent.Listener.Addr().(*net.TCPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Probe(ctx, "127.0.0.1", uint16(addr.Port), baseOptions())
	var perr *Error
	if !errors.As(err, &perr) || perr.Phase != PhaseBanner || perr.Reason != ReasonTimeout {
		t.Errorf("silent http: err = %v, want banner/timeout", err)
	}
	talking := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, "S: HTTP/1.0 400 Bad Request\nContent-Length: 0\n", "DRAIN"))
	_, err = probeFake(t, talking, baseOptions(), 2*time.Second)
	if !errors.As(err, &perr) || perr.Phase != PhaseBanner || perr.Reason != ReasonProtocol {
		t.Errorf("talking http: err = %v, want banner/protocol", err)
	}
}

// TestHostileMemoryFlat runs many probes against servers that send without
// end, and checks the heap does not grow with them.
func TestHostileMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	srv := smtptest.NewFake(t, "tcp4", func(c *smtptest.Conn) error {
		b := []byte(strings.Repeat("250-endless reply line\r\n", 512))
		for {
			if _, err := c.Write(b); err != nil {
				return nil
			}
		}
	})
	run := func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probeFake(t, srv, baseOptions(), 2*time.Second)
			}()
			if i%16 == 15 {
				wg.Wait()
			}
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	run(32)
	before := heap()
	run(320)
	after := heap()
	if after > before+8<<20 {
		t.Errorf("heap grew from %d to %d bytes over 320 hostile probes", before, after)
	}
	t.Logf("heap in use: %d before, %d after 320 probes against an endless reply", before, after)
}
