package main

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// pluginOutput is a monitoring plugin's output as Nagios and Icinga read it
// (the Nagios plugin API, "Plugin Output Spec"): the first line is the
// status text and, after "|", performance data; the lines after it are long
// text, until a line with "|", whose rest and every line after are more
// performance data.
type pluginOutput struct {
	state, text string
	long        []string
	perf        []perfItem
}

// perfItem is 'label'=value[UOM];[warn];[crit];[min];[max].
type perfItem struct {
	label, value, uom, warn, crit, min, max string
}

var (
	statusRe = regexp.MustCompile(`^SMTP (OK|WARNING|CRITICAL|UNKNOWN) - (\S.*)$`)
	// A label is quoted ('' for a quote inside) or a run of characters
	// without space, quote or '='.
	perfRe  = regexp.MustCompile(`^('(?:[^'=]|'')+'|[^ '=]+)=(-?[0-9]+(?:\.[0-9]+)?|U)(s|us|ms|%|B|KB|MB|TB|c)?((?:;[^; ]*){0,4})$`)
	rangeRe = regexp.MustCompile(`^(@?(~|-?[0-9]+(\.[0-9]+)?)?(:(-?[0-9]+(\.[0-9]+)?)?)?)?$`)
	numRe   = regexp.MustCompile(`^(-?[0-9]+(\.[0-9]+)?)?$`)
	stateOf = map[string]int{"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
)

// parsePluginOutput reads out as Nagios does and fails the test on any line
// that breaks the spec: the status line, "|" only once, every item of
// performance data, no control characters.
func parsePluginOutput(t *testing.T, out string) pluginOutput {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("output does not end with a newline: %q", out)
	}
	if n := strings.Count(out, "|"); n > 1 {
		t.Errorf("%d '|' in the output: a second one would start performance data in the long text\n%s", n, out)
	}
	if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
		t.Errorf("control character %q in the output at byte %d", out[i], i)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var p pluginOutput
	text, perf, _ := strings.Cut(lines[0], "|")
	m := statusRe.FindStringSubmatch(strings.TrimRight(text, " "))
	if m == nil {
		t.Fatalf("status line %q is not \"SMTP STATE - text\"", lines[0])
	}
	p.state, p.text = m[1], m[2]
	inPerf := false
	for _, l := range lines[1:] {
		switch {
		case inPerf:
			perf += " " + l
		case strings.Contains(l, "|"):
			lt, more, _ := strings.Cut(l, "|")
			p.long, perf, inPerf = append(p.long, lt), perf+" "+more, true
		default:
			p.long = append(p.long, l)
		}
	}
	labels := map[string]bool{}
	for _, item := range splitPerf(t, perf) {
		m := perfRe.FindStringSubmatch(item)
		if m == nil {
			t.Errorf("performance data %q is not 'label'=value[UOM];[warn];[crit];[min];[max]", item)
			continue
		}
		pi := perfItem{label: strings.ReplaceAll(strings.Trim(m[1], "'"), "''", "'"), value: m[2], uom: m[3]}
		fields := strings.Split(strings.TrimPrefix(m[4], ";"), ";")
		fields = append(fields, "", "", "", "")
		pi.warn, pi.crit, pi.min, pi.max = fields[0], fields[1], fields[2], fields[3]
		if !rangeRe.MatchString(pi.warn) || !rangeRe.MatchString(pi.crit) || !numRe.MatchString(pi.min) || !numRe.MatchString(pi.max) {
			t.Errorf("performance data %q: bad threshold, min or max", item)
		}
		if labels[pi.label] {
			t.Errorf("performance data label %q twice", pi.label)
		}
		labels[pi.label] = true
		p.perf = append(p.perf, pi)
	}
	return p
}

// splitPerf splits performance data at the spaces outside quoted labels.
func splitPerf(t *testing.T, s string) []string {
	var items []string
	var cur strings.Builder
	quoted := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '\'':
			quoted = !quoted // '' toggles twice
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				items = append(items, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteRune(r)
	}
	if quoted {
		t.Errorf("unterminated quote in performance data %q", s)
	}
	if cur.Len() > 0 {
		items = append(items, cur.String())
	}
	return items
}

func (p pluginOutput) item(label string) (perfItem, bool) {
	for _, i := range p.perf {
		if i.label == label {
			return i, true
		}
	}
	return perfItem{}, false
}

// startTLSFake serves the OK dialog over implicit TLS with a certificate
// that expires in days.
func startTLSFake(t *testing.T, days int) string {
	pki := testpki.New(t, time.Now().Add(-time.Hour), time.Now().Add(time.Duration(days)*24*time.Hour), "127.0.0.1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtptest.Serve(t, tls.NewListener(ln, pki.Server), func(c net.Conn) { smtptest.Respond(c, smtptest.OK) })
	return ln.Addr().String()
}

// startHostile greets with a 421 whose text holds "|", ESC and a line of
// its own, to break the status line and the performance data.
func startHostile(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtptest.Serve(t, ln, func(c net.Conn) {
		c.Write([]byte("421 4.7.0 go away | time=99s;;;0 \x1b[31mred\x1b[0m\rSMTP OK - forged\r\n"))
		buf := make([]byte, 512)
		c.Read(buf)
		c.Write([]byte("221 bye\r\n"))
	})
	return ln.Addr().String()
}

// TestProbeCommandNagios: --output=nagios speaks the monitoring plugins'
// format, every line of which a Nagios-style parser accepts, with the
// state and exit code each outcome calls for.
func TestProbeCommandNagios(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	busy := smtptest.Start(t, smtptest.Busy)
	reject := smtptest.Start(t, smtptest.RejectRcpt)
	tarpit := smtptest.Start(t, smtptest.Tarpit)
	hostile := startHostile(t)
	soon := startTLSFake(t, 10)
	refused := testenv.FreeAddr(t) // nothing listens there
	conf := writeFile(t, t.TempDir(), "c.yml", "modules:\n  default:\n    helo_name: probe.test\n    timeout: 5s\n"+
		"  smtps:\n    tls: implicit\n    tls_config: {insecure_skip_verify: true}\n")
	rcpt := []string{"--mail-from=probe@example.org", "--rcpt-to=nobody@example.org"}
	tests := []struct {
		name      string
		args      []string
		state     string
		text      string   // the status text begins so
		wantPerf  []string // labels
		certWarn  string   // cert_days's warning threshold, when wanted
		wantInLog string   // in the long text
	}{
		{"ok", []string{ok.Addr}, "OK", ok.Addr + ": probe succeeded in ", []string{"time", "resolve", "connect", "banner", "ehlo", "quit"}, "", "C: EHLO probe.test"},
		{"4xx is a warning", []string{busy.Addr}, "WARNING", busy.Addr + ": failed in phase banner (reply_4xx): the server answered with a temporary failure: 421 #4.4.5 Too many connections",
			[]string{"time", "banner"}, "", "congested"},
		{"5xx is critical", append([]string{reject.Addr}, rcpt...), "CRITICAL", reject.Addr + ": failed in phase rcpt (reply_5xx)", []string{"time", "mail", "rcpt", "quit"}, "", "S: 550 5.1.1"},
		{"connection refused is critical", []string{refused}, "CRITICAL", refused + ": failed in phase connect (connect): the TCP connection could not be made: " + refused + ": connection refused",
			[]string{"time", "connect"}, "", ""},
		{"timeout is critical", []string{tarpit.Addr, "--timeout=500ms"}, "CRITICAL", tarpit.Addr + ": failed in phase banner (timeout)", []string{"time", "banner"}, "", ""},
		{"certificate inside --cert-warning", []string{soon, "--module=smtps"}, "WARNING", soon + ": certificate expires in 9.", []string{"time", "tls", "cert_days"}, "14:", ""},
		{"certificate outside the thresholds", []string{soon, "--module=smtps", "--cert-warning=5d", "--cert-critical=1d"}, "OK", soon + ": probe succeeded in ", []string{"cert_days"}, "5:", ""},
		{"certificate inside --cert-critical", []string{soon, "--module=smtps", "--cert-critical=240h"}, "CRITICAL", soon + ": certificate expires in 9.", []string{"cert_days"}, "14:", ""},
		{"hostile reply text", []string{hostile}, "WARNING", hostile + `: failed in phase banner (reply_4xx): the server answered with a temporary failure: 421 4.7.0 go away \x7c time=99s;;;0 \x1b[31mred\x1b[0m\x0dSMTP OK - forged`,
			[]string{"time", "banner"}, "", `S: 421 4.7.0 go away \x7c time=99s`},
		{"usage error is unknown", []string{ok.Addr, "--helo=bad name"}, "UNKNOWN", `--helo: "bad name" is not a domain`, nil, "", ""},
		{"unknown module is unknown", []string{ok.Addr, "--module=nope"}, "UNKNOWN", `unknown module "nope" (the modules are "default", "smtps")`, nil, "", ""},
		{"bad flag is unknown", []string{ok.Addr, "--bogus"}, "UNKNOWN", `unknown long flag '--bogus'`, nil, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"probe", "--output=nagios", "--config.file=" + conf}, tc.args...)...)
			p := parsePluginOutput(t, out)
			if p.state != tc.state || code != stateOf[tc.state] {
				t.Errorf("state %s, exit %d; want %s, exit %d\n%s", p.state, code, tc.state, stateOf[tc.state], out)
			}
			if !strings.HasPrefix(p.text, tc.text) {
				t.Errorf("status text %q does not begin with %q", p.text, tc.text)
			}
			for _, l := range tc.wantPerf {
				if i, ok := p.item(l); !ok {
					t.Errorf("no performance data %q in %+v", l, p.perf)
				} else if l != "cert_days" && (i.uom != "s" || i.min != "0") {
					t.Errorf("%s: %+v, want seconds with min 0", l, i)
				}
			}
			if tc.certWarn != "" {
				if i, _ := p.item("cert_days"); i.warn != tc.certWarn || !strings.HasPrefix(i.value, "9.") {
					t.Errorf("cert_days = %+v, want about 9.99 days, warning below %s", i, tc.certWarn)
				}
			}
			if tc.wantInLog != "" && !strings.Contains(strings.Join(p.long, "\n"), tc.wantInLog) {
				t.Errorf("long text lacks %q:\n%s", tc.wantInLog, strings.Join(p.long, "\n"))
			}
			if tc.wantPerf == nil && (len(p.long) > 0 || len(p.perf) > 0) {
				t.Errorf("an UNKNOWN of a usage error is one line: %q", out)
			}
			if errOut != "" {
				t.Errorf("stderr: %q (a plugin says everything on stdout)", errOut)
			}
		})
	}
}

// TestNagiosStatusLineLikeCheckSMTP runs the monitoring plugins' own
// check_smtp against the same fake servers: its state, exit code, status
// line shape ("SMTP STATE - ...") and time performance data are ours. (Its
// output is read leniently: check_smtp prints a diagnostic line before the
// status line on some failures, none at all for a 4xx greeting (only its
// exit code says WARNING), and passes the server's CR through, all of which
// the strict parser above refuses in ours.)
func TestNagiosStatusLineLikeCheckSMTP(t *testing.T) {
	const checkSMTP = "/usr/lib/nagios/plugins/check_smtp"
	_, err := os.Stat(checkSMTP)
	testenv.Require(t, err == nil, "%s (monitoring-plugins-basic) is not installed", filepath.Base(checkSMTP))
	ok := smtptest.Start(t, smtptest.OK)
	busy := smtptest.Start(t, smtptest.Busy)
	refused := testenv.FreeAddr(t) // nothing listens there
	for _, tc := range []struct {
		name, addr string
		state      string
	}{
		{"ok", ok.Addr, "OK"},
		{"4xx greeting", busy.Addr, "WARNING"},
		{"refused", refused, "CRITICAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(tc.addr)
			cmd := exec.Command(checkSMTP, "-H", host, "-p", port, "-t", "5")
			out, _ := cmd.Output()
			theirCode := cmd.ProcessState.ExitCode()
			var theirs pluginOutput
			for _, l := range strings.Split(string(out), "\n") {
				if statusRe.MatchString(strings.TrimSpace(l)) || strings.HasPrefix(l, "SMTP ") {
					theirs = parsePluginOutput(t, strings.ReplaceAll(l, "\r", "")+"\n")
				}
			}
			code, ours, _ := runCLI("probe", "--output=nagios", tc.addr)
			our := parsePluginOutput(t, ours)
			if theirCode != stateOf[tc.state] || (theirs.state != "" && theirs.state != tc.state) {
				t.Errorf("check_smtp says %q (exit %d), the test expects %s: %q", theirs.state, theirCode, tc.state, out)
			}
			if our.state != tc.state || code != stateOf[tc.state] {
				t.Errorf("we say %s (exit %d), want %s like check_smtp's %s (exit %d)\nours:   %s\ntheirs: %s",
					our.state, code, tc.state, theirs.state, theirCode, ours, out)
			}
			if _, ok := theirs.item("time"); !ok && theirs.state != "" {
				t.Errorf("check_smtp has no time performance data: %q", out)
			}
			if i, ok := our.item("time"); !ok || i.uom != "s" {
				t.Errorf("our time performance data %+v is not in seconds like check_smtp's", i)
			}
		})
	}
}
