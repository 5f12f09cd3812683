package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// TestLogLinesShareKeys: the exporter's own lines and those of
// exporter-toolkit (through the slog bridge) both carry ts, never time.
func TestLogLinesShareKeys(t *testing.T) {
	for _, format := range []string{"logfmt", "json"} {
		var buf bytes.Buffer
		base := newLogger(&buf, "info", format)
		level.Info(withTimestamp(base)).Log("msg", "from go-kit")
		slog.New(sloggokit.NewGoKitHandler(bridgeLogger(base), slog.LevelInfo)).Info("from slog")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines:\n%s", format, len(lines), buf.String())
		}
		for _, l := range lines {
			ts := strings.Contains(l, "ts=") || strings.Contains(l, `"ts":`)
			if !ts || strings.Contains(l, "time=") || strings.Contains(l, `"time":`) {
				t.Errorf("%s: %q has no ts or has time", format, l)
			}
		}
	}
}
