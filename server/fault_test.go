package server

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// settle waits for goroutines and fds to come back to at most the baseline
// (plus slack for runtime helpers), and reports what it saw.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines+5 && f <= fds+5 {
			t.Logf("after: %d goroutines (baseline %d), %d fds (baseline %d)", g, goroutines, f, fds)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("leak: %d goroutines (baseline %d), %d fds (baseline %d)\n%s", g, goroutines, f, fds, buf[:n])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFaultSuite sends 10,000 probes through /probe to hostile servers:
// each ends within its deadline, and afterwards goroutines and file
// descriptors are back at their baseline.
func TestFaultSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	kinds := []string{"tarpit", "drip", "endless", "reset", "tls"}
	modes := map[string]string{"tarpit": smtptest.Tarpit, "drip": smtptest.Drip, "endless": smtptest.Endless, "reset": smtptest.Reset, "tls": smtptest.NotTLS}
	addrs := map[string]string{}
	for _, k := range kinds {
		addrs[k] = smtptest.Start(t, modes[k]).Addr
	}
	// Tarpits and drips end at their (short) deadline; the others must end
	// on their own, with their own reason: their deadline is long enough
	// that a loaded machine cannot turn a reset into a timeout.
	conf := `
modules:
  slow:
    helo_name: probe.test
    timeout: 300ms
  fast:
    helo_name: probe.test
    timeout: 30s
  tls:
    helo_name: probe.test
    tls: implicit
    timeout: 30s
`
	s, _ := newTestServer(t, conf, Options{MaxInFlight: 512})
	srv := httptest.NewServer(s.Probe())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 2 * time.Minute} // a hang fails
	defer client.CloseIdleConnections()

	http.Get(srv.URL + "?target=" + addrs["reset"] + "&module=fast") // warm up the HTTP path
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	t.Logf("before: %d goroutines, %d fds", goroutines, fds)

	const total = 10000
	var next, slow, failed atomic.Int64
	var worstMu sync.Mutex
	worst := map[string]time.Duration{} // the longest probe of each kind
	reasons := sync.Map{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				kind := kinds[i%int64(len(kinds))]
				module := map[string]string{"tarpit": "slow", "drip": "slow", "endless": "fast", "reset": "fast", "tls": "tls"}[kind]
				resp, err := client.Get(srv.URL + "?target=" + addrs[kind] + "&module=" + module)
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				text := string(body)
				// The probe's own duration against its deadline, with room
				// for a loaded machine (the request's wall time also holds
				// the queueing of 256 clients on two cores: not the probe's).
				d, ok := probeDuration(text)
				if !ok || d > map[string]time.Duration{"slow": 300 * time.Millisecond, "fast": 30 * time.Second, "tls": 30 * time.Second}[module]+10*time.Second {
					slow.Add(1)
					t.Logf("%s probe took %s (found: %t)", kind, d, ok)
				}
				worstMu.Lock()
				worst[kind] = max(worst[kind], d)
				worstMu.Unlock()
				if resp.StatusCode != http.StatusOK || !strings.Contains(text, "probe_success 0\n") {
					failed.Add(1)
					continue
				}
				if i := strings.Index(text, `reason="`); i >= 0 {
					reason := text[i+8:]
					reason = reason[:strings.IndexByte(reason, '"')]
					v, _ := reasons.LoadOrStore(kind+"/"+reason, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := map[string]int64{}
	reasons.Range(func(k, v any) bool { got[k.(string)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d probes in %s (%.0f/s); outcomes: %v; longest probe of each kind: %v", total, elapsed.Round(time.Millisecond), total/elapsed.Seconds(), got, worst)
	if failed.Load() != 0 || slow.Load() != 0 {
		t.Errorf("%d requests failed, %d took past their deadline", failed.Load(), slow.Load())
	}
	for kind, want := range map[string]string{"tarpit": "timeout", "drip": "timeout", "endless": "protocol", "reset": "closed", "tls": "tls"} {
		if got[kind+"/"+want] != total/int64(len(kinds)) {
			t.Errorf("%s: %d probes failed with %s, want all %d (outcomes %v)", kind, got[kind+"/"+want], want, total/len(kinds), got)
		}
	}
	client.CloseIdleConnections()
	srv.CloseClientConnections()
	settle(t, goroutines, fds)
}

// TestFloodKeepsExporterResponsive floods /probe with tarpit targets: the
// excess is refused with 503, /metrics and /-/healthy keep answering, and a
// static target keeps succeeding (it has capacity of its own).
func TestFloodKeepsExporterResponsive(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	tarpit := smtptest.Start(t, smtptest.Tarpit).Addr
	static := smtptest.Start(t, smtptest.OK).Addr
	s, reg := newTestServer(t, "modules:\n  default:\n    helo_name: probe.test\n    timeout: 2s\ntargets:\n  - target: "+static+"\n", Options{MaxInFlight: 100})
	mux := http.NewServeMux()
	mux.Handle("/probe", s.Probe())
	mux.Handle("/metrics", s.Metrics(reg))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, TLSClientConfig: &tls.Config{}}}
	defer client.CloseIdleConnections()

	stop := make(chan struct{})
	var flood sync.WaitGroup
	var ok200, refused503 atomic.Int64
	for w := 0; w < 300; w++ {
		flood.Add(1)
		go func() {
			defer flood.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(srv.URL + "/probe?target=" + tarpit)
				if err != nil {
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					ok200.Add(1)
				case http.StatusServiceUnavailable:
					refused503.Add(1)
				}
			}
		}()
	}
	// Wait until the flood holds every /probe slot (bounded: a hang fails).
	for deadline := time.Now().Add(30 * time.Second); s.conns.InUse() < s.conns.Size() || refused503.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the flood never filled the /probe slots: %d of %d in use, %d refused", s.conns.InUse(), s.conns.Size(), refused503.Load())
		}
		runtime.Gosched()
	}
	var worst time.Duration
	staticOK := `probe_success{module="default",target="` + static + `"} 1`
	for i := 0; i < 20; i++ {
		for _, path := range []string{"/metrics", "/-/healthy"} {
			t0 := time.Now()
			resp, err := http.Get(srv.URL + path)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s during the flood: %v", path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			worst = max(worst, time.Since(t0))
			if path == "/metrics" && !strings.Contains(string(body), staticOK+"\n") {
				t.Errorf("during the flood the static target failed:\n%s", body)
			}
		}
	}
	close(stop)
	flood.Wait()
	t.Logf("during the flood: worst /metrics or /-/healthy latency %s; %d probes answered, %d refused with 503", worst, ok200.Load(), refused503.Load())
	// A bound that catches a hang, not a speed test: the figure is logged.
	if worst > 10*time.Second {
		t.Errorf("/metrics or /-/healthy took %s during the flood", worst)
	}
}

// probeDuration reads probe_duration_seconds from an exposition.
func probeDuration(text string) (time.Duration, bool) {
	_, rest, ok := strings.Cut(text, "\nprobe_duration_seconds ")
	if !ok {
		return 0, false
	}
	v, _, _ := strings.Cut(rest, "\n")
	secs, err := strconv.ParseFloat(v, 64)
	return time.Duration(secs * float64(time.Second)), err == nil
}
