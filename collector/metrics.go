package collector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// descSet holds the descriptors of a probe's metrics for one label layout.
// targetLabels come first on every series (module and target in /metrics);
// hostLabels (mx and preference with mx_lookup) on every per-host series.
type descSet struct {
	success, duration, dnsLookup, mxHosts                *prometheus.Desc
	ipProtocol, phaseDuration, replyCode, lastReplyCode  *prometheus.Desc
	lastEnhanced, replies, failure, extension, sizeLimit *prometheus.Desc
	tlsVersion, certExpiry                               *prometheus.Desc
}

func newDescSet(targetLabels, hostLabels []string) *descSet {
	t := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, targetLabels...), labels...), nil)
	}
	h := func(name, help string, labels ...string) *prometheus.Desc {
		return t(name, help, append(append([]string{}, hostLabels...), labels...)...)
	}
	return &descSet{
		success:       t("probe_success", "1 if every step of the SMTP dialog got the reply it needed, else 0."),
		duration:      t("probe_duration_seconds", "How long the whole probe took."),
		dnsLookup:     t("probe_dns_lookup_time_seconds", "How long name resolution took (the MX lookup with mx_lookup)."),
		mxHosts:       t("probe_smtp_mx_hosts", "How many MX hosts the domain's lookup returned."),
		ipProtocol:    h("probe_ip_protocol", "The IP protocol of the address dialled: 4 or 6 (0 if none was)."),
		phaseDuration: h("probe_smtp_phase_duration_seconds", "How long each phase of the dialog took.", "phase"),
		replyCode:     h("probe_smtp_reply_code", "The reply code received in each phase of the dialog.", "phase"),
		lastReplyCode: h("probe_smtp_last_reply_code", "The code of the reply that decided the probe: the failing reply, or the reply to QUIT; 0 if none came."),
		lastEnhanced:  h("probe_smtp_last_enhanced_status_info", "The RFC 3463 enhanced status code of the reply that decided the probe.", "code"),
		replies:       h("probe_smtp_replies_total", "Replies received from this target with this module since the exporter started, by class.", "class"),
		failure:       h("probe_smtp_failure_info", "1 when the probe failed: the phase it failed in and why.", "phase", "reason"),
		extension:     h("probe_smtp_extension_info", "1 for each EHLO keyword the server advertised (after STARTTLS when TLS was started).", "extension"),
		sizeLimit:     h("probe_smtp_message_size_limit_bytes", "The message size limit the server advertised with SIZE."),
		tlsVersion:    h("probe_tls_version_info", "The TLS version negotiated.", "version"),
		certExpiry:    h("probe_ssl_earliest_cert_expiry", "The earliest expiry, as a unix time, of the certificates the server sent."),
	}
}

var (
	staticLabels = []string{"module", "target"}
	mxLabels     = []string{"mx", "preference"}

	probeDescs         = newDescSet(nil, nil)
	probeMXDescs       = newDescSet(nil, mxLabels)
	staticProbeDescs   = newDescSet(staticLabels, nil)
	staticProbeMXDescs = newDescSet(staticLabels, mxLabels)
)

// outcome is one probe as the metrics see it: a single host, or every
// exchanger of a domain.
type outcome struct {
	success  bool
	duration time.Duration
	dns      time.Duration
	// mx is set for mx_lookup probes; lookupErr is the lookup's own failure.
	mx        *smtp.MXResult
	lookupErr *smtp.Error
	hosts     []hostOutcome
}

// hostOutcome is the probe of one host and its reply counters.
type hostOutcome struct {
	name, preference string // mx_lookup only
	res              *smtp.Result
	counts           ReplyCounts
}

// newOutcome wraps a single-host probe.
func newOutcome(res *smtp.Result) *outcome {
	return &outcome{success: res.Success(), duration: res.Duration, dns: res.DNSDuration, hosts: []hostOutcome{{res: res}}}
}

// newMXOutcome wraps an MX probe, judged by mode (mx_success).
func newMXOutcome(mx *smtp.MXResult, mode string) *outcome {
	o := &outcome{success: mx.Success(mode), duration: mx.Duration, dns: mx.LookupDuration, mx: mx, lookupErr: mx.Err}
	for _, h := range mx.Hosts {
		o.hosts = append(o.hosts, hostOutcome{name: h.Name, preference: strconv.Itoa(int(h.Preference)), res: h.Result})
	}
	return o
}

// phaseIndex orders phases for aggregation without a map per probe.
var phaseIndex = func() map[smtp.Phase]int {
	m := make(map[smtp.Phase]int, len(smtp.Phases))
	for i, p := range smtp.Phases {
		m[p] = i
	}
	return m
}()

// collect sends the outcome's metrics. targetValues are the values of the
// set's target labels (module and target in /metrics, none in /probe).
func (o *outcome) collect(ch chan<- prometheus.Metric, d *descSet, targetValues ...string) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(append([]string{}, targetValues...), labels...)...)
	}
	gauge(d.success, boolFloat(o.success))
	gauge(d.duration, o.duration.Seconds())
	gauge(d.dnsLookup, o.dns.Seconds())
	if o.mx != nil {
		gauge(d.mxHosts, float64(o.mx.Found))
		if e := o.lookupErr; e != nil {
			gauge(d.failure, 1, "", "", string(e.Phase), string(e.Reason))
		}
	}
	for i := range o.hosts {
		o.hosts[i].collect(ch, d, targetValues, o.mx != nil)
	}
}

func (h *hostOutcome) collect(ch chan<- prometheus.Metric, d *descSet, targetValues []string, mx bool) {
	base := append([]string{}, targetValues...)
	if mx {
		base = append(base, h.name, h.preference)
	}
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(base[:len(base):len(base)], labels...)...)
	}
	res := h.res
	gauge(d.ipProtocol, float64(res.IPProtocol))

	// A phase with several replies (RCPT per recipient, EHLO around
	// STARTTLS, HELO after EHLO) reports its total time and its last reply.
	var durations [16]time.Duration
	var replies [16]*smtp.Reply
	var reached [16]bool
	for _, p := range res.Phases {
		i := phaseIndex[p.Phase]
		reached[i] = true
		durations[i] += p.Duration
		if p.Reply != nil {
			replies[i] = p.Reply
		}
	}
	for i, p := range smtp.Phases {
		if !reached[i] {
			continue
		}
		gauge(d.phaseDuration, durations[i].Seconds(), string(p))
		if replies[i] != nil {
			gauge(d.replyCode, float64(replies[i].Code), string(p))
		}
	}

	deciding := res.DecidingReply()
	code := 0
	if deciding != nil {
		code = deciding.Code
		if !deciding.Enhanced.IsZero() {
			gauge(d.lastEnhanced, 1, deciding.Enhanced.String())
		}
	}
	gauge(d.lastReplyCode, float64(code))
	for i, class := range replyClasses {
		ch <- prometheus.MustNewConstMetric(d.replies, prometheus.CounterValue, float64(h.counts[i]), append(base[:len(base):len(base)], class)...)
	}
	if e := res.Err; e != nil {
		gauge(d.failure, 1, string(e.Phase), string(e.Reason))
	}
	for ext := range res.Extensions {
		gauge(d.extension, 1, ext)
	}
	if size, ok := res.MessageSizeLimit(); ok {
		gauge(d.sizeLimit, float64(size))
	}
	if t := res.TLS; t != nil {
		if t.Version != 0 {
			gauge(d.tlsVersion, 1, t.VersionName())
		}
		if exp := t.EarliestExpiry(); !exp.IsZero() {
			gauge(d.certExpiry, float64(exp.Unix()))
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// outcomeCollector exposes one outcome, for a per-request registry.
type outcomeCollector struct {
	o    *outcome
	desc *descSet
}

var _ prometheus.Collector = outcomeCollector{}

// Describe sends nothing: the collector is unchecked, its series vary.
func (outcomeCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the outcome's metrics.
func (c outcomeCollector) Collect(ch chan<- prometheus.Metric) { c.o.collect(ch, c.desc) }
