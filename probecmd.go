package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// probeFlags is the probe command's command line.
type probeFlags struct {
	target, module string
	timeout        time.Duration
	timeoutSet     bool
	output         string
	certWarning    model.Duration
	certCritical   model.Duration
	// The module overrides, and whether each was given.
	port, tls, helo, mailFrom, ipProtocol string
	rcptTo                                []string
	data, insecure, mxLookup              bool
	set                                   map[string]*bool
}

// overrideFlags names the probe command's flag for each module key it
// overrides, in the order of the help.
var overrideFlags = []struct{ flag, key, help string }{
	{"port", "port", "Overrides the module's port: the target's port when it names none."},
	{"tls", "tls", "Overrides the module's tls: none, starttls or implicit (none drops the module's tls_config)."},
	{"helo", "helo_name", "Overrides the module's helo_name: the name sent with EHLO and HELO."},
	{"mail-from", "mail_from", "Overrides the module's mail_from: MAIL FROM's address (<> for the null sender)."},
	{"rcpt-to", "rcpt_to", "Overrides the module's rcpt_to: RCPT TO's address; repeat the flag for more."},
	{"data", "send_data", "Overrides the module's send_data: send DATA and a small test message (--no-data: not)."},
	{"insecure-skip-verify", "tls_config", "Overrides the module's tls_config.insecure_skip_verify: do not verify the certificate."},
	{"ip-protocol", "ip_protocol", "Overrides the module's ip_protocol: ip4 or ip6."},
	{"mx-lookup", "mx_lookup", "Overrides the module's mx_lookup: the target is a domain whose MX hosts are probed."},
}

// addProbeCommand registers the probe command and its flags.
func addProbeCommand(app *kingpin.Application, f *probeFlags) *kingpin.CmdClause {
	cmd := app.Command("probe", "Probe one target now, print the SMTP transcript with timings and an explanation of every non-2xx reply; "+
		"exit 0 on success, 2 on failure, 3 on a usage or config error. With --output=nagios, a monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
	cmd.Arg("target", "host, host:port, [v6addr]:port, or a domain for an mx_lookup module.").Required().StringVar(&f.target)
	cmd.Flag("module", "Module of the configuration file to probe with.").Default(config.DefaultModuleName).StringVar(&f.module)
	cmd.Flag("timeout", "Overrides the module's timeout (e.g. 30s); must be positive.").IsSetByUser(&f.timeoutSet).DurationVar(&f.timeout)
	cmd.Flag("output", "text: the transcript and the explanations; nagios: the monitoring plugins' format (status line, performance data, transcript).").
		Default("text").EnumVar(&f.output, "text", "nagios")
	cmd.Flag("cert-warning", "With --output=nagios: WARNING when the certificate expires within this (720h, 30d).").Default("14d").SetValue(durationValue{"--cert-warning", &f.certWarning})
	cmd.Flag("cert-critical", "With --output=nagios: CRITICAL when the certificate expires within this.").Default("3d").SetValue(durationValue{"--cert-critical", &f.certCritical})
	f.set = map[string]*bool{}
	for _, o := range overrideFlags {
		set := new(bool)
		f.set[o.flag] = set
		fl := cmd.Flag(o.flag, o.help).IsSetByUser(set)
		switch o.flag {
		case "port":
			fl.PlaceHolder("25").StringVar(&f.port)
		case "tls":
			fl.PlaceHolder("starttls").StringVar(&f.tls)
		case "helo":
			fl.PlaceHolder("probe.example.org").StringVar(&f.helo)
		case "mail-from":
			fl.PlaceHolder("probe@example.org").StringVar(&f.mailFrom)
		case "rcpt-to":
			fl.PlaceHolder("postmaster@example.org").StringsVar(&f.rcptTo)
		case "data":
			fl.BoolVar(&f.data)
		case "insecure-skip-verify":
			fl.BoolVar(&f.insecure)
		case "ip-protocol":
			fl.PlaceHolder("ip6").StringVar(&f.ipProtocol)
		case "mx-lookup":
			fl.BoolVar(&f.mxLookup)
		}
	}
	return cmd
}

// durationValue is a flag holding a Prometheus duration: 720h, 30d, 1w.
type durationValue struct {
	flag string
	d    *model.Duration
}

func (v durationValue) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%s: %q is not a duration such as 720h or 30d", v.flag, s)
	}
	*v.d = d
	return nil
}

func (v durationValue) String() string { return v.d.String() }

// anyOverride reports whether a flag overrides the module.
func (f *probeFlags) anyOverride() bool {
	for _, set := range f.set {
		if *set {
			return true
		}
	}
	return false
}

// override is the module override the flags ask for.
func (f *probeFlags) override() (config.Override, error) {
	var o config.Override
	given := func(flag string) bool { return *f.set[flag] }
	if given("port") {
		p, err := config.ParsePort(f.port)
		if err != nil {
			return o, err
		}
		o.Port = &p
	}
	if given("tls") {
		mode := smtp.TLSMode(f.tls)
		o.TLS = &mode
	}
	if given("helo") {
		o.HeloName = &f.helo
	}
	if given("mail-from") {
		o.MailFrom = &f.mailFrom
	}
	if given("rcpt-to") {
		o.RcptTo = f.rcptTo
	}
	if given("data") {
		o.SendData = &f.data
	}
	if given("insecure-skip-verify") {
		o.InsecureSkipVerify = &f.insecure
	}
	if given("ip-protocol") {
		o.IPProtocol = &f.ipProtocol
	}
	if given("mx-lookup") {
		o.MXLookup = &f.mxLookup
	}
	return o, nil
}

// overrideError says what is wrong with the module the flags made: as the
// flag ("--helo: ...") where the key is one a flag set, else as the
// module's key.
func (f *probeFlags) overrideError(err error) error {
	var ke *config.KeyError
	if !errors.As(err, &ke) || len(ke.Path) == 0 {
		return err
	}
	for _, o := range overrideFlags {
		if o.key == ke.Path[0] && *f.set[o.flag] {
			// On the command line, "needs mail_from" is "needs --mail-from".
			msg := ke.Err.Error()
			for _, other := range overrideFlags {
				msg = strings.ReplaceAll(msg, "needs "+other.key+":", "needs --"+other.flag+":")
			}
			return fmt.Errorf("--%s: %s", o.flag, msg)
		}
	}
	var given []string
	for _, o := range overrideFlags {
		if *f.set[o.flag] {
			given = append(given, "--"+o.flag)
		}
	}
	return fmt.Errorf("module %q with %s: %w", f.module, strings.Join(given, ", "), err)
}

// probeSet is the compiled configuration for the probe command: the file's
// (or the built-in default module without a file), with the flags'
// overrides applied to the module probed. Static targets are left out:
// the command probes one target.
func probeSet(f *flags, stderr io.Writer) (*probe.Set, error) {
	var c *config.Config
	if _, statErr := os.Stat(f.configFile); statErr != nil && !f.configFileSet && errors.Is(statErr, os.ErrNotExist) {
		if f.probe.output == "text" {
			what := "(EHLO..QUIT)"
			if f.probe.anyOverride() {
				what = "and the flags given"
			}
			fmt.Fprintf(stderr, "%s: no %s here: probing with the built-in default module %s\n", program, f.configFile, what)
		}
		c = config.Default()
	} else {
		var err error
		if c, err = config.LoadFile(f.configFile); err != nil {
			return nil, err
		}
	}
	m, ok := c.Modules[f.probe.module]
	if !ok {
		return nil, errors.New(c.UnknownModule(f.probe.module))
	}
	o, err := f.probe.override()
	if err != nil {
		return nil, f.probe.overrideError(err)
	}
	if m, err = m.WithOverride(o); err != nil {
		return nil, f.probe.overrideError(err)
	}
	one := *c
	one.Modules = maps.Clone(c.Modules)
	one.Modules[f.probe.module] = m
	one.Targets = nil
	set, err := probe.Build(&one)
	if err != nil {
		return nil, config.FileError(f.configFile, c, err)
	}
	return set, nil
}

// runProbe is the one-shot probe command, the successor of `telnet host 25`:
// the transcript as it happens, then an explanation of every non-2xx reply
// and the verdict; or, with --output=nagios, a monitoring plugin's output.
// Without --config.file and without the default file, it probes with the
// built-in default module.
func runProbe(f *flags, stdout, stderr io.Writer) int {
	nagios := f.probe.output == "nagios"
	usage := func(err error) int {
		if nagios {
			return probe.WriteNagiosUnknown(stdout, err.Error())
		}
		fmt.Fprintf(stderr, "%s: %v\n", program, err)
		return exitUsage
	}
	if f.probe.timeoutSet && f.probe.timeout <= 0 {
		return usage(fmt.Errorf("--timeout %s: want a positive duration", f.probe.timeout))
	}
	set, err := probeSet(f, stderr)
	if err != nil {
		return usage(err)
	}
	plan := set.Plans[f.probe.module]
	t, err := plan.ParseTarget(f.probe.target)
	if err != nil {
		return usage(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	timeout := plan.Timeout
	if f.probe.timeoutSet {
		timeout = f.probe.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if nagios {
		tr := &probe.Transcript{}
		o, _ := probe.Run(ctx, t, probe.Hooks{Transcript: tr.Add})
		limits := probe.CertLimits{Warning: time.Duration(f.probe.certWarning), Critical: time.Duration(f.probe.certCritical)}
		return probe.WriteNagios(stdout, o, tr, limits, time.Now())
	}
	// smtp serialises transcript calls; each line is printed as it happens.
	o, _ := probe.Run(ctx, t, probe.Hooks{Transcript: func(l smtp.TranscriptLine) { fmt.Fprintln(stdout, l.String()) }})
	probe.WriteReport(stdout, o)
	if !o.Success {
		return exitFailure
	}
	return exitOK
}

// wantsNagios reports whether args ask for --output=nagios, for a command
// line that does not parse: its error is then an UNKNOWN status line.
func wantsNagios(args []string) bool {
	i := slices.Index(args, "--output")
	return slices.Contains(args, "--output=nagios") || (i >= 0 && i+1 < len(args) && args[i+1] == "nagios")
}
