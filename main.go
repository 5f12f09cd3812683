// Command smtp_exporter is a Prometheus exporter that probes SMTP servers:
// on each scrape it runs a greeting-to-QUIT dialog per target and exposes
// latency, reply codes and reply-class counters.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/server"
)

const program = "smtp_exporter"

// Exit codes of the probe command, as monitoring plugins use them.
const (
	exitOK      = 0
	exitFailure = 2
	exitUsage   = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flags holds the command line.
type flags struct {
	configFile, logLevel, logFormat string
	configFileSet                   bool
	configCheck, staticOnly         bool
	timeoutOffset                   float64
	maxInFlight, staticConcurrency  int
	counterLimit, historyLimit      int
	web                             *web.FlagConfig
	probe                           probeFlags
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New(program, "Prometheus exporter that probes SMTP servers: greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT.")
	app.UsageWriter(stdout).ErrorWriter(stderr)
	app.Version(version.Print(program))
	app.HelpFlag.Short('h')
	var f flags
	app.Flag("config.file", "SMTP exporter configuration file.").Default("smtp_exporter.yml").IsSetByUser(&f.configFileSet).StringVar(&f.configFile)
	app.Flag("config.check", "Validate the configuration file, print what is wrong, and exit (non-zero on error).").BoolVar(&f.configCheck)
	app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")
	app.Flag("timeout-offset", "Seconds to take off Prometheus's scrape timeout (X-Prometheus-Scrape-Timeout-Seconds) for the probe's own deadline.").Default("0.5").Float64Var(&f.timeoutOffset)
	app.Flag("probe.max-in-flight", "Most connections /probe holds at once (an MX probe takes one per exchanger); /probe answers 503 beyond it. The static targets of /metrics have --static.concurrency of their own.").Default("1000").IntVar(&f.maxInFlight)
	app.Flag("history.limit", "Most recent probes the landing page lists, each with its transcript (failed ones kept longer); 0 keeps none.").Default("100").IntVar(&f.historyLimit)
	app.Flag("probe.counter-limit", "Most targets whose reply counters are kept for /probe; the least recently probed is forgotten first.").Default("10000").IntVar(&f.counterLimit)
	app.Flag("probe.static-targets-only", "Restrict /probe to the targets listed in the configuration file.").BoolVar(&f.staticOnly)
	app.Flag("static.concurrency", "Most static targets one /metrics scrape probes at once.").Default("256").IntVar(&f.staticConcurrency)
	f.web = kingpinflag.AddFlags(app, ":9425")
	serve := app.Command("serve", "Run the exporter (the default).").Default()
	probeCmd := addProbeCommand(app, &f.probe)

	cmd, err := app.Parse(args)
	if err != nil {
		if slices.Contains(args, "probe") && wantsNagios(args) {
			return probe.WriteNagiosUnknown(stdout, err.Error())
		}
		fmt.Fprintf(stderr, "%s: %v (try --help)\n", program, err)
		return exitUsage
	}
	base := newLogger(stderr, f.logLevel, f.logFormat)
	logger := withTimestamp(base)

	switch {
	case f.configCheck:
		set, err := loadSet(f.configFile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", program, err)
			return 1
		}
		for _, w := range set.Warnings {
			fmt.Fprintf(stderr, "%s: warning: %s\n", program, w)
		}
		fmt.Fprintf(stdout, "%s: config file %s is valid\n", program, f.configFile)
		return exitOK
	case cmd == probeCmd.FullCommand():
		return runProbe(&f, stdout, stderr)
	case cmd == serve.FullCommand():
		return runServer(&f, logger, base)
	}
	return exitUsage
}

// loadSet loads and compiles a config file, as a reload does.
func loadSet(path string) (*probe.Set, error) {
	c, err := config.LoadFile(path)
	if err != nil {
		return nil, err
	}
	set, err := probe.Build(c)
	if err != nil {
		return nil, config.FileError(path, c, err)
	}
	return set, nil
}

// historyBytes bounds the memory of the recent probes' transcripts (a
// transcript with its metrics is a few KiB).
const historyBytes = 8 << 20

// runServer runs the exporter until SIGTERM or SIGINT. base is the logger
// without timestamp and caller, for the slog bridge.
func runServer(f *flags, logger, base log.Logger) int {
	level.Info(logger).Log("msg", "Starting "+program, "version", version.Info())
	level.Info(logger).Log("msg", "Build context", "build_context", version.BuildContext())

	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector(program), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sc := config.NewSafeConfig(reg, probe.Build)
	sc.OnLoad(func(set *probe.Set) { // every load, the first and each reload
		for _, w := range set.Warnings {
			level.Warn(logger).Log("msg", "Config warning", "file", f.configFile, "warning", w)
		}
	})
	if err := sc.Reload(f.configFile, logger); err != nil {
		level.Error(logger).Log("msg", "Cannot start without a valid config", "err", err)
		return 1
	}
	srvOpts := server.Options{
		Config: sc, ConfigFile: f.configFile, Logger: logger, TimeoutOffset: f.timeoutOffset, StaticOnly: f.staticOnly,
		MaxInFlight: f.maxInFlight, StaticConcurrency: f.staticConcurrency, CounterLimit: f.counterLimit,
		HistoryLimit: f.historyLimit, HistoryBytes: historyBytes,
	}
	handlers := server.New(srvOpts, reg)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = handlers.Reload() // logged by Reload; the old config keeps running
		}
	}()
	mux, err := handlers.Routes(program, reg)
	if err != nil {
		level.Error(logger).Log("msg", "Cannot build the landing page", "err", err)
		return 1
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Handlers set their own write deadline once their answer is ready;
		// this bounds the whole request, probe included.
		WriteTimeout:   server.WriteTimeout(sc.Get().Config),
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	slogger := slog.New(sloggokit.NewGoKitHandler(bridgeLogger(base), slogLevel(f.logLevel)))
	done := make(chan error, 1)
	go func() { done <- web.ListenAndServe(srv, f.web, slogger) }()

	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	select {
	case err := <-done:
		level.Error(logger).Log("msg", "Error running the HTTP server", "err", err)
		return 1
	case sig := <-term:
		// In-flight probes end within their own timeouts; give them that.
		grace := sc.Get().Config.MaxTimeout() + time.Second
		level.Info(logger).Log("msg", "Shutting down, letting in-flight probes finish", "signal", sig, "grace", grace)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			level.Error(logger).Log("msg", "Error shutting down", "err", err)
			return 1
		}
		return exitOK
	}
}
