package collector

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The probe metrics are written straight into the text exposition format
// instead of through const metrics and a registry: for 10,000 static targets
// that path allocated 275 MB and spent most of a second per scrape building
// structures that were encoded once and thrown away (BenchmarkStaticExposition10k).

// family is one metric family of a probe.
type family struct {
	name, help string
	counter    bool
}

// The probe metric families, in the order they are written (by name, as a
// registry would).
var (
	famDNSLookup     = &family{name: "probe_dns_lookup_time_seconds", help: "How long name resolution took (the MX lookup with mx_lookup)."}
	famDuration      = &family{name: "probe_duration_seconds", help: "How long the whole probe took."}
	famIPProtocol    = &family{name: "probe_ip_protocol", help: "The IP protocol of the address dialled: 4 or 6 (0 if none was)."}
	famExtension     = &family{name: "probe_smtp_extension_info", help: "1 for each EHLO keyword the server advertised (after STARTTLS when TLS was started)."}
	famFailure       = &family{name: "probe_smtp_failure_info", help: "1 when the probe failed: the phase it failed in and why."}
	famLastEnhanced  = &family{name: "probe_smtp_last_enhanced_status_info", help: "The RFC 3463 enhanced status code of the reply that decided the probe."}
	famLastReplyCode = &family{name: "probe_smtp_last_reply_code", help: "The code of the reply that decided the probe: the failing reply, or the reply to QUIT; 0 if none came."}
	famSizeLimit     = &family{name: "probe_smtp_message_size_limit_bytes", help: "The message size limit the server advertised with SIZE."}
	famMXHosts       = &family{name: "probe_smtp_mx_hosts", help: "How many MX hosts the domain's lookup returned."}
	famPhaseDuration = &family{name: "probe_smtp_phase_duration_seconds", help: "How long each phase of the dialog took."}
	famReplies       = &family{name: "probe_smtp_replies_total", help: "Replies received from this target with this module since the exporter started, by class.", counter: true}
	famReplyCode     = &family{name: "probe_smtp_reply_code", help: "The reply code received in each phase of the dialog."}
	famCertExpiry    = &family{name: "probe_ssl_earliest_cert_expiry", help: "The earliest expiry, as a unix time, of the certificates the server sent."}
	famSuccess       = &family{name: "probe_success", help: "1 if every step of the SMTP dialog got the reply it needed, else 0."}
	famTLSVersion    = &family{name: "probe_tls_version_info", help: "The TLS version negotiated."}

	probeFamilies = []*family{famDNSLookup, famDuration, famIPProtocol, famExtension, famFailure, famLastEnhanced,
		famLastReplyCode, famSizeLimit, famMXHosts, famPhaseDuration, famReplies, famReplyCode, famCertExpiry,
		famSuccess, famTLSVersion}
)

// TextContentType is the content type of the text exposition format.
const TextContentType = "text/plain; version=0.0.4; charset=utf-8"

// exposed is one outcome to expose, with the labels of its target: module
// and target in /metrics, none in /probe.
type exposed struct {
	o      *outcome
	labels []labelPair
}

type labelPair struct{ name, value string }

// writeProbeMetrics writes the probe families of every item, each family
// once with all its samples (and not at all without samples), and returns
// the first write error.
func writeProbeMetrics(w io.Writer, items []exposed) error {
	e := &expoWriter{w: bufio.NewWriterSize(w, 32<<10)}
	for _, f := range probeFamilies {
		for i := range items {
			items[i].write(e, f)
		}
	}
	return e.flush()
}

// write emits the item's samples of family f: the probe-wide families here,
// the others once per host (with mx and preference labels under mx_lookup).
func (x *exposed) write(e *expoWriter, f *family) {
	o := x.o
	switch f {
	case famSuccess:
		e.sample(f, x.labels, boolFloat(o.success))
	case famDuration:
		e.sample(f, x.labels, o.duration.Seconds())
	case famDNSLookup:
		e.sample(f, x.labels, o.dns.Seconds())
	case famMXHosts:
		if o.mx != nil {
			e.sample(f, x.labels, float64(o.mx.Found))
		}
	default:
		if f == famFailure && o.lookupErr != nil {
			e.sample(f, x.labels, 1, labelPair{"mx", ""}, labelPair{"preference", ""},
				labelPair{"phase", string(o.lookupErr.Phase)}, labelPair{"reason", string(o.lookupErr.Reason)})
		}
		for i := range o.hosts {
			h := &o.hosts[i]
			labels := x.labels
			if o.mx != nil {
				labels = append(labels[:len(labels):len(labels)], labelPair{"mx", h.name}, labelPair{"preference", h.preference})
			}
			h.write(e, f, labels)
		}
	}
}

// write emits one host's samples of family f.
func (h *hostOutcome) write(e *expoWriter, f *family, labels []labelPair) {
	res := h.res
	switch f {
	case famIPProtocol:
		e.sample(f, labels, float64(res.IPProtocol))
	case famPhaseDuration:
		for _, p := range h.phases {
			e.sample(f, labels, p.duration.Seconds(), labelPair{"phase", string(p.phase)})
		}
	case famReplyCode:
		for _, p := range h.phases {
			if p.reply != nil {
				e.sample(f, labels, float64(p.reply.Code), labelPair{"phase", string(p.phase)})
			}
		}
	case famLastReplyCode:
		code := 0
		if r := res.DecidingReply(); r != nil {
			code = r.Code
		}
		e.sample(f, labels, float64(code))
	case famLastEnhanced:
		if r := res.DecidingReply(); r != nil && !r.Enhanced.IsZero() {
			e.sample(f, labels, 1, labelPair{"code", r.Enhanced.String()})
		}
	case famReplies:
		for i, class := range replyClasses {
			e.sample(f, labels, float64(h.counts[i]), labelPair{"class", class})
		}
	case famFailure:
		if err := res.Err; err != nil {
			e.sample(f, labels, 1, labelPair{"phase", string(err.Phase)}, labelPair{"reason", string(err.Reason)})
		}
	case famExtension:
		for _, ext := range h.extensions {
			e.sample(f, labels, 1, labelPair{"extension", ext})
		}
	case famSizeLimit:
		if size, ok := res.MessageSizeLimit(); ok {
			e.sample(f, labels, float64(size))
		}
	case famTLSVersion:
		if t := res.TLS; t != nil && t.Version != 0 {
			e.sample(f, labels, 1, labelPair{"version", t.VersionName()})
		}
	case famCertExpiry:
		if t := res.TLS; t != nil {
			if exp := t.EarliestExpiry(); !exp.IsZero() {
				e.sample(f, labels, float64(exp.Unix()))
			}
		}
	}
}

// expoWriter writes the text exposition format (version 0.0.4).
type expoWriter struct {
	w      *bufio.Writer
	err    error
	cur    *family     // the family whose header was written last
	labels []labelPair // scratch
	num    []byte      // scratch
}

func (e *expoWriter) header(f *family) {
	typ := "gauge"
	if f.counter {
		typ = "counter"
	}
	e.str("# HELP " + f.name + " ")
	e.str(escapeHelp(f.help))
	e.str("\n# TYPE " + f.name + " " + typ + "\n")
}

// sample writes one line: the family's name, the labels (sorted by name, as
// a registry writes them) and the value; before a family's first sample, its
// HELP and TYPE lines.
func (e *expoWriter) sample(f *family, base []labelPair, v float64, extra ...labelPair) {
	if e.cur != f {
		e.header(f)
		e.cur = f
	}
	e.labels = append(append(e.labels[:0], base...), extra...)
	sortLabels(e.labels)
	e.str(f.name)
	if len(e.labels) > 0 {
		e.byte('{')
		for i, l := range e.labels {
			if i > 0 {
				e.byte(',')
			}
			e.str(l.name)
			e.str(`="`)
			e.str(escapeLabel(l.value))
			e.byte('"')
		}
		e.byte('}')
	}
	e.byte(' ')
	e.num = appendFloat(e.num[:0], v)
	if e.err == nil {
		_, e.err = e.w.Write(e.num)
	}
	e.byte('\n')
}

// sortLabels is an insertion sort: a sample has at most seven labels.
func sortLabels(l []labelPair) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].name < l[j-1].name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

func (e *expoWriter) str(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *expoWriter) byte(c byte) {
	if e.err == nil {
		e.err = e.w.WriteByte(c)
	}
}

func (e *expoWriter) flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// appendFloat formats v as the text format does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\n\"") {
		return s
	}
	return labelEscaper.Replace(s)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
