package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
)

// TestSafeConfigLastReloadError: a failed reload is remembered, with its
// time, until a reload succeeds (the landing page shows it meanwhile).
func TestSafeConfigLastReloadError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yml")
	sc := NewSafeConfig(nil, func(c *Config) (*Config, error) { return c, nil })
	reload := func(conf string) error {
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return sc.Reload(path, log.NewNopLogger())
	}
	if at, err := sc.LastReloadError(); err != nil || !at.IsZero() {
		t.Errorf("before any reload: %v at %v", err, at)
	}
	if err := reload("modules:\n  default: {}\n"); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	failure := reload("modules:\n  default:\n    bogus: 1\n")
	at, err := sc.LastReloadError()
	if failure == nil || err == nil || err.Error() != failure.Error() || at.Before(before) || time.Since(at) > time.Minute {
		t.Errorf("after a failed reload: %v at %v, want the reload's error %v, now", err, at, failure)
	}
	if !strings.Contains(err.Error(), "bogus") {
		t.Errorf("the error does not name the key: %v", err)
	}
	if err := reload("modules:\n  default: {}\n"); err != nil {
		t.Fatal(err)
	}
	if at, err := sc.LastReloadError(); err != nil || !at.IsZero() {
		t.Errorf("after a good reload: %v at %v, want none", err, at)
	}
}
