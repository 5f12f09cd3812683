package config

import (
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the running configuration, compiled into T by the build
// function given to NewSafeConfig (the exporter compiles each module into a
// probe plan once per load), and swaps it on reload. A file that does not
// load or does not compile keeps the old one running. Reloads are
// serialised: each one reads, compiles and installs its file before the next
// starts, so the file read last is the one that runs.
type SafeConfig[T any] struct {
	// reloading is held across a whole Reload or Set (read, compile,
	// install); mu only guards cur and onLoad.
	reloading sync.Mutex
	mu        sync.RWMutex
	cur       T
	build     func(*Config) (T, error)
	onLoad    []func(T)
	success   prometheus.Gauge
	seconds   prometheus.Gauge
	// lastErr is the last reload's error, nil once a reload succeeds.
	lastErr   error
	lastErrAt time.Time
}

// NewSafeConfig returns a SafeConfig holding T's zero value until the first
// successful Reload; its reload metrics are registered with reg.
func NewSafeConfig[T any](reg prometheus.Registerer, build func(*Config) (T, error)) *SafeConfig[T] {
	sc := &SafeConfig[T]{
		build: build,
		success: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smtp_exporter_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded, else 0.",
		}),
		seconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smtp_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration reload.",
		}),
	}
	if reg != nil {
		reg.MustRegister(sc.success, sc.seconds)
	}
	return sc
}

// Get returns the running configuration. It must not be modified.
func (sc *SafeConfig[T]) Get() T {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.cur
}

// LastReloadError returns when the last reload failed and its error, for
// as long as the running configuration is older than the file (no reload
// has succeeded since); a nil error once one does.
func (sc *SafeConfig[T]) LastReloadError() (time.Time, error) {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.lastErrAt, sc.lastErr
}

// OnLoad adds f to the functions told about every configuration put in
// place; they run, in order, before Reload returns.
func (sc *SafeConfig[T]) OnLoad(f func(T)) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.onLoad = append(sc.onLoad, f)
}

// Reload loads path, compiles it and puts it in place. On error the old
// configuration stays and the success gauge goes to 0. A Reload that
// starts while another runs waits for it: without that, a reload that read
// the older file and was slow to compile it (a slow ca_file) could install
// it after a reload of the newer file.
func (sc *SafeConfig[T]) Reload(path string, logger log.Logger) error {
	sc.reloading.Lock()
	defer sc.reloading.Unlock()
	c, err := LoadFile(path)
	if err != nil {
		return sc.failed(path, logger, err)
	}
	if err := sc.set(c); err != nil {
		return sc.failed(path, logger, FileError(path, c, err))
	}
	level.Info(logger).Log("msg", "Loaded config file", "file", path, "modules", len(c.Modules), "targets", len(c.Targets))
	return nil
}

func (sc *SafeConfig[T]) failed(path string, logger log.Logger, err error) error {
	sc.mu.Lock()
	sc.lastErr, sc.lastErrAt = err, time.Now()
	sc.mu.Unlock()
	sc.success.Set(0)
	level.Error(logger).Log("msg", "Error loading config, keeping the old one", "file", path, "err", err)
	return err
}

// Set compiles c and puts it in place, as a successful reload.
func (sc *SafeConfig[T]) Set(c *Config) error {
	sc.reloading.Lock()
	defer sc.reloading.Unlock()
	return sc.set(c)
}

func (sc *SafeConfig[T]) set(c *Config) error {
	t, err := sc.build(c)
	if err != nil {
		return err
	}
	sc.mu.Lock()
	sc.cur = t
	sc.lastErr, sc.lastErrAt = nil, time.Time{}
	onLoad := sc.onLoad
	sc.mu.Unlock()
	for _, f := range onLoad {
		f(t)
	}
	sc.success.Set(1)
	sc.seconds.SetToCurrentTime()
	return nil
}
