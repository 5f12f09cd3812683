// Package testenv runs the exporter binary and real peers for tests.
package testenv

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Update is the -update flag of the golden-file tests (collector's). It is
// defined here so that every test binary of the module accepts it, and
// `go test ./... -run Golden -args -update` runs across all packages.
var Update = flag.Bool("update", false, "rewrite golden files instead of comparing with them")

// InCI reports whether the tests run under CI=true, where a missing
// dependency fails a test instead of skipping it.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require fails (under CI) or skips (elsewhere, loudly) a test whose
// dependency is missing.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI=true and %s: run scripts/install-test-deps as root", msg)
	}
	t.Skipf("SKIPPING: %s (run scripts/install-test-deps as root to run this test)", msg)
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildExporter builds the exporter binary into dir.
func BuildExporter(dir string) (string, error) {
	bin := filepath.Join(dir, "smtp_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the exporter: %v\n%s", err, out)
	}
	return bin, nil
}

// RunWithExporter is a TestMain body: it builds the exporter binary into a
// temporary directory, sets *bin to it, runs the tests and cleans up.
func RunWithExporter(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "smtp_exporter-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildExporter(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// FreeAddr returns a loopback address with a port that was free just now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// client bounds every request a test makes, so a hung exporter fails the
// test instead of hanging it.
var client = &http.Client{Timeout: 30 * time.Second}

// Exporter is the exporter binary running in the background.
type Exporter struct {
	Cmd  *exec.Cmd
	Base string // http://127.0.0.1:port
	Addr string
	Done chan error

	mu     sync.Mutex
	stderr bytes.Buffer
}

type lockedWriter struct{ e *Exporter }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	return w.e.stderr.Write(p)
}

// StartExporter runs bin with args on a free loopback port and waits until
// it is healthy. It is killed when the test ends.
func StartExporter(t testing.TB, bin string, args ...string) *Exporter {
	t.Helper()
	addr := FreeAddr(t)
	e := &Exporter{Base: "http://" + addr, Addr: addr, Done: make(chan error, 1)}
	e.Cmd = exec.Command(bin, append([]string{"--web.listen-address=" + addr}, args...)...)
	e.Cmd.Stderr = lockedWriter{e}
	if err := e.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.Done <- e.Cmd.Wait() }()
	t.Cleanup(func() {
		e.Cmd.Process.Kill()
		<-e.Done
		if t.Failed() {
			t.Logf("exporter log:\n%s", e.Log())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := client.Get(e.Base + "/-/healthy"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter did not become healthy:\n%s", e.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is what the exporter wrote to stderr so far.
func (e *Exporter) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stderr.String()
}

// Get fetches path.
func (e *Exporter) Get(t testing.TB, path string) (int, string) {
	t.Helper()
	return e.do(t, http.MethodGet, path)
}

// Post posts an empty body to path.
func (e *Exporter) Post(t testing.TB, path string) (int, string) {
	t.Helper()
	return e.do(t, http.MethodPost, path)
}

func (e *Exporter) do(t testing.TB, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.Base+path, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// IPv6Loopback reports whether [::1] can be listened on.
func IPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
