package config

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
)

// TestConcurrentReloadsInstallTheNewerFile: a reload that read the older
// file and is slow to compile it (a slow ca_file) must not install it after
// a reload of the newer file. Reload A reads v1 and blocks in its build; the
// file becomes v2 and reload B starts. B must wait for A (one lock around
// read, build and install), so v2 runs in the end. The interleaving is forced
// without timing: A's build blocks until the test lets it go, and the test
// goes on once B is either compiling too (the bug) or waiting on the reload
// lock (seen in B's goroutine stack).
func TestConcurrentReloadsInstallTheNewerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	write := func(helo string) {
		if err := os.WriteFile(path, []byte("modules:\n  default: {helo_name: "+helo+"}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	building := make(chan string, 2)
	release := make(chan struct{})
	sc := NewSafeConfig(nil, func(c *Config) (string, error) {
		helo := c.Modules["default"].HeloName
		building <- helo
		if helo == "one.test" {
			<-release
		}
		return helo, nil
	})
	var mu sync.Mutex
	var installed []string
	sc.OnLoad(func(s string) {
		mu.Lock()
		defer mu.Unlock()
		installed = append(installed, s)
	})
	reload := func() chan error {
		done := make(chan error, 1)
		go func() { done <- sc.Reload(path, log.NewNopLogger()) }()
		return done
	}

	write("one.test")
	doneA := reload()
	if got := <-building; got != "one.test" {
		t.Fatalf("first build compiled %q", got)
	}
	write("two.test")
	doneB := reload()
	overlap := false
	for !overlap && !waitingForReload() {
		select {
		case got := <-building:
			t.Errorf("reload B compiled %q while reload A was still compiling the older file", got)
			overlap = true
			// Let B finish first: the order that ran the older file.
			errB := <-doneB
			doneB = make(chan error, 1)
			doneB <- errB
		default:
			time.Sleep(time.Millisecond) // polling B's state, not a timing assertion
		}
	}
	close(release)
	for _, done := range []chan error{doneA, doneB} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got := sc.Get(); got != "two.test" {
		t.Errorf("running %q after both reloads, want the file's two.test", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(installed, []string{"one.test", "two.test"}) {
		t.Errorf("installed in the order %v, want [one.test two.test]", installed)
	}
}

// waitingForReload reports whether a goroutine is blocked on a mutex inside
// SafeConfig.Reload.
func waitingForReload() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[sync.Mutex.Lock") && strings.Contains(g, "config.(*SafeConfig[...]).Reload(") {
			return true
		}
	}
	return false
}
