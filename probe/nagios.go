package probe

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// The states of a monitoring plugin (Nagios, Icinga, Naemon, Shinken) and
// their exit codes.
const (
	PluginOK       = 0
	PluginWarning  = 1
	PluginCritical = 2
	PluginUnknown  = 3
)

var pluginStates = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// CertLimits are the thresholds on the certificate's remaining validity:
// less than Warning is WARNING, less than Critical CRITICAL; 0 is off.
type CertLimits struct {
	Warning, Critical time.Duration
}

// WriteNagios writes o in the monitoring plugins' format and returns the
// exit code: one status line ("SMTP OK - ...") with the performance data
// after "|" (the whole probe's and each phase's seconds, the certificate's
// days left), then the transcript and the explanations as long output.
// OK is success; WARNING a 4xx reply or the certificate inside
// limits.Warning; CRITICAL any other failure (5xx, connection, timeout,
// TLS) or the certificate inside limits.Critical; UNKNOWN a probe that
// could not run (config, policy). Server text is made safe (SafeText), and
// "|", which would start the performance data, is written \x7c.
func WriteNagios(w io.Writer, o *Outcome, tr *Transcript, limits CertLimits, now time.Time) int {
	state, text := outcomeState(o)
	perf := []perfDatum{{label: "time", value: o.Duration.Seconds(), uom: "s", min: "0"}}
	used := map[string]int{"time": 1}
	for _, h := range o.Hosts {
		prefix := strings.TrimSpace(h.Name + " " + h.Address) // empty for a single host
		for _, p := range h.Phases {
			label := strings.TrimSpace(prefix + " " + string(p.Phase))
			if used[label]++; used[label] > 1 { // labels are unique
				label += "_" + strconv.Itoa(used[label])
			}
			perf = append(perf, perfDatum{label: label, value: p.Duration.Seconds(), uom: "s", min: "0"})
		}
	}
	if exp, ok := earliestExpiry(o); ok {
		left := exp.Sub(now)
		days := math.Floor(left.Hours()/24*100) / 100
		d := perfDatum{label: "cert_days", value: days, decimals: 2}
		if limits.Warning > 0 {
			d.warn = daysString(limits.Warning) + ":"
		}
		if limits.Critical > 0 {
			d.crit = daysString(limits.Critical) + ":"
		}
		perf = append(perf, d)
		certState := PluginOK
		switch {
		case limits.Critical > 0 && left < limits.Critical:
			certState = PluginCritical
		case limits.Warning > 0 && left < limits.Warning:
			certState = PluginWarning
		}
		certText := fmt.Sprintf("certificate expires in %s days (%s)", daysString(left), exp.UTC().Format(time.RFC3339))
		if certState != PluginOK {
			threshold := map[int]string{PluginWarning: "--cert-warning", PluginCritical: "--cert-critical"}[certState]
			certText += ", inside " + threshold
			if state == PluginOK {
				text = o.Target.Key + ": " + certText
			} else {
				text += "; " + certText
			}
			state = worse(state, certState)
		} else if state == PluginOK {
			text += ", " + certText
		}
	}
	var b bytes.Buffer
	b.WriteString(statusLine(state, text))
	b.WriteString(" |")
	for _, d := range perf {
		b.WriteString(" " + d.String())
	}
	b.WriteString("\n")
	var long bytes.Buffer
	if tr != nil {
		_, _ = tr.WriteTo(&long)
	}
	WriteReport(&long, o)
	for line := range strings.Lines(long.String()) {
		if line = strings.TrimRight(line, "\n"); strings.TrimSpace(line) != "" {
			b.WriteString(pluginText(line) + "\n")
		}
	}
	_, _ = w.Write(b.Bytes())
	return state
}

// WriteNagiosUnknown writes the UNKNOWN status line of a probe that could
// not start (a usage or config error) and returns its exit code.
func WriteNagiosUnknown(w io.Writer, msg string) int {
	fmt.Fprintln(w, statusLine(PluginUnknown, msg))
	return PluginUnknown
}

// maxStatusText bounds the status line's text: Nagios keeps the first line
// for notifications and tables.
const maxStatusText = 400

func statusLine(state int, text string) string {
	text = pluginText(text)
	if len(text) > maxStatusText {
		text = cutText(text, maxStatusText) + "..."
	}
	return "SMTP " + pluginStates[state] + " - " + text
}

// pluginText makes text safe for the plugin output: control characters
// escaped, and "|" too, since it starts the performance data.
func pluginText(s string) string {
	return strings.ReplaceAll(smtp.SafeText(s), "|", `\x7c`)
}

// cutText cuts s to at most n bytes without splitting a character.
func cutText(s string, n int) string {
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// outcomeState judges the probe: its state and the status text.
func outcomeState(o *Outcome) (int, string) {
	if o.Success {
		text := fmt.Sprintf("%s: probe succeeded in %.3fs", o.Target.Key, o.Duration.Seconds())
		if o.IsMX() {
			text = fmt.Sprintf("%s: probe of %d MX hosts succeeded in %.3fs", o.Target.Key, o.MXFound, o.Duration.Seconds())
		}
		if failed := len(o.Failures()); failed > 0 {
			text += fmt.Sprintf(" (%d of %d failed, as mx_success allows)", failed, len(o.Hosts))
		}
		if len(o.Hosts) == 1 && !o.IsMX() {
			res := o.Hosts[0].Result
			if r := bannerReply(res); r != nil {
				text += ": " + r.String()
			}
			if t := res.TLS; t != nil && t.HandshakeComplete {
				text += ", " + t.VersionName()
			}
		}
		return PluginOK, text
	}
	// The text is the worst failure's.
	state, text, failed := PluginOK, "", 0
	for _, h := range o.Hosts {
		e := h.Result.Err
		if e == nil {
			continue
		}
		failed++
		s := PluginCritical
		switch e.Reason {
		case smtp.Reason4xx:
			s = PluginWarning
		case smtp.ReasonConfig, smtp.ReasonPolicy:
			s = PluginUnknown
		}
		if worse(state, s) != state {
			prefix := h.tag()
			if prefix == "" {
				prefix = o.Target.Key + ": "
			}
			state, text = s, prefix+smtp.ExplainFailure(e)
		}
	}
	if state == PluginOK { // failed without a host's failure: not expected
		return PluginCritical, o.Target.Key + ": probe failed"
	}
	if failed > 1 {
		text += fmt.Sprintf(" (%d of %d hosts failed)", failed, len(o.Hosts))
	}
	return state, text
}

// worse is the more serious of two states: CRITICAL, WARNING, UNKNOWN, OK.
func worse(a, b int) int {
	rank := [...]int{PluginOK: 0, PluginWarning: 2, PluginCritical: 3, PluginUnknown: 1}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func bannerReply(r *smtp.Result) *smtp.Reply {
	for _, p := range r.Phases {
		if p.Phase == smtp.PhaseBanner {
			return p.Reply
		}
	}
	return nil
}

// earliestExpiry is the earliest expiry of any certificate a host sent.
func earliestExpiry(o *Outcome) (time.Time, bool) {
	var earliest time.Time
	for _, h := range o.Hosts {
		if t := h.Result.TLS; t != nil {
			if exp := t.EarliestExpiry(); !exp.IsZero() && (earliest.IsZero() || exp.Before(earliest)) {
				earliest = exp
			}
		}
	}
	return earliest, !earliest.IsZero()
}

// daysString writes a duration in days: "14", "1.5".
func daysString(d time.Duration) string {
	return strconv.FormatFloat(math.Floor(d.Hours()/24*100)/100, 'f', -1, 64)
}

// perfDatum is one item of performance data:
// 'label'=value[UOM];[warn];[crit];[min];[max].
type perfDatum struct {
	label                string
	value                float64
	uom                  string
	decimals             int // 6 when 0
	warn, crit, min, max string
}

func (d perfDatum) String() string {
	label := strings.ReplaceAll(d.label, "=", "_")
	if strings.ContainsAny(label, " '") {
		label = "'" + strings.ReplaceAll(label, "'", "''") + "'"
	}
	decimals := d.decimals
	if decimals == 0 {
		decimals = 6
	}
	s := label + "=" + strconv.FormatFloat(d.value, 'f', decimals, 64) + d.uom + ";" + d.warn + ";" + d.crit + ";" + d.min + ";" + d.max
	return strings.TrimRight(s, ";")
}
