package main

import (
	"io"
	"log/slog"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// newLogger builds the go-kit logger the flags ask for, without timestamp
// and caller: the exporter's own lines add them with log.With, the lines of
// exporter-toolkit come through the slog bridge with its own.
func newLogger(w io.Writer, lvl, format string) log.Logger {
	sw := log.NewSyncWriter(w)
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(sw)
	} else {
		l = log.NewLogfmtLogger(sw)
	}
	return level.NewFilter(l, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
}

// withTimestamp adds what every line of the exporter's own carries: ts
// (UTC, RFC 3339 with nanoseconds) and caller.
func withTimestamp(base log.Logger) log.Logger {
	return log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
}

// bridgeLogger is base for the slog bridge: slog-gokit names the time
// "time" and passes a time.Time; this writes it as "ts", formatted as the
// go-kit lines are, so that every line has the same keys.
func bridgeLogger(base log.Logger) log.Logger {
	return log.LoggerFunc(func(kv ...any) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == slog.TimeKey {
				kv[i] = "ts"
				if t, ok := kv[i+1].(time.Time); ok {
					kv[i+1] = t.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		return base.Log(kv...)
	})
}

// slogLevel maps the --log.level value for the slog bridge.
func slogLevel(lvl string) slog.Level {
	switch lvl {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
