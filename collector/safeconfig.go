package collector

import (
	"sync"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// SafeConfig holds the running config and swaps it on reload. A reload that
// fails keeps the old config running.
type SafeConfig struct {
	mu      sync.RWMutex
	c       *Config
	success prometheus.Gauge
	seconds prometheus.Gauge
	// onLoad, when set, is told about every config that is put in place.
	onLoad func(*Config)
}

// NewSafeConfig returns an empty SafeConfig whose reload metrics are
// registered with reg.
func NewSafeConfig(reg prometheus.Registerer) *SafeConfig {
	sc := &SafeConfig{
		c: &Config{Modules: map[string]*Module{}},
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

// Get returns the running config. It must not be modified.
func (sc *SafeConfig) Get() *Config {
	sc.mu.RLock()
	defer sc.mu.RUnlock()
	return sc.c
}

// OnLoad registers f to be told about every config put in place; f runs
// with the new config before Reload returns.
func (sc *SafeConfig) OnLoad(f func(*Config)) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.onLoad = f
}

// Reload loads path and, if it is valid, puts it in place. On error the old
// config stays and the success gauge goes to 0.
func (sc *SafeConfig) Reload(path string, logger log.Logger) error {
	c, err := LoadConfig(path)
	if err != nil {
		sc.success.Set(0)
		level.Error(logger).Log("msg", "Error loading config, keeping the old one", "file", path, "err", err)
		return err
	}
	sc.apply(c)
	level.Info(logger).Log("msg", "Loaded config file", "file", path, "modules", len(c.Modules), "targets", len(c.Targets))
	return nil
}

// apply puts c in place, tells the OnLoad function, and records a
// successful reload.
func (sc *SafeConfig) apply(c *Config) {
	sc.mu.Lock()
	sc.c = c
	onLoad := sc.onLoad
	sc.mu.Unlock()
	if onLoad != nil {
		onLoad(c)
	}
	sc.success.Set(1)
	sc.seconds.SetToCurrentTime()
}
