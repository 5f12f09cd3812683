package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// runProbe is the one-shot probe command, the successor of `telnet host 25`:
// the transcript as it happens, then an explanation of every non-2xx reply
// and the verdict. Without --config.file and without the default file, it
// probes with the built-in default module.
func runProbe(f *flags, stdout, stderr io.Writer) int {
	var set *probe.Set
	var err error
	if _, statErr := os.Stat(f.configFile); statErr != nil && !f.configFileSet && errors.Is(statErr, os.ErrNotExist) {
		fmt.Fprintf(stderr, "%s: no %s here: probing with the built-in default module (EHLO..QUIT)\n", program, f.configFile)
		set, err = probe.Build(config.Default())
	} else {
		set, err = loadSet(f.configFile)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return exitUsage
	}
	plan, ok := set.Plans[f.probeModule]
	if !ok {
		fmt.Fprintf(stderr, "%s: %s\n", program, set.Config.UnknownModule(f.probeModule))
		return exitUsage
	}
	t, err := plan.ParseTarget(f.probeTarget)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	timeout := plan.Timeout
	if f.probeTimeout > 0 {
		timeout = f.probeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// smtp serialises transcript calls; each line is printed as it happens.
	o, _ := probe.Run(ctx, t, probe.Hooks{Transcript: func(l smtp.TranscriptLine) { fmt.Fprintln(stdout, l.String()) }})
	probe.WriteReport(stdout, o)
	if !o.Success {
		return exitFailure
	}
	return exitOK
}
