// Package collector is the Prometheus side of a probe: one table of the probe
// metric families (name, help, type, labels and the function that yields the
// samples of each), the text exposition writer, the reply counters that live
// across scrapes, and the collection of the static targets behind /metrics.
package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// sink takes the samples of one family for one probe or host.
type sink struct {
	e          *expoWriter
	f          *family
	item, host []labelPair
}

// emit writes one sample: its value and the values of the family's own
// labels, in the order the family declares them.
func (s *sink) emit(v float64, labelValues ...string) {
	s.e.sample(s.f, s.item, s.host, v, labelValues)
}

// family is one probe metric family. Exactly one of perProbe and perHost is
// set: a per-probe family has one sample set per probe, a per-host family one
// per host probed (with mx and preference labels under mx_lookup).
type family struct {
	name, help string
	counter    bool
	labels     []string
	perProbe   func(o *probe.Outcome, s *sink)
	perHost    func(h *hostItem, s *sink)
	headerText string // HELP and TYPE lines, set by init
}

// hostItem is one host of an outcome with its reply counters.
type hostItem struct {
	*probe.Host
	outcome *probe.Outcome
	counts  ReplyCounts
}

// families is the table of probe metric families, sorted by name (the order
// a registry writes them in; a test checks it). Adding a metric is adding an
// entry here.
var families = []family{
	{name: "probe_dns_lookup_time_seconds", help: "How long name resolution took (the MX lookup with mx_lookup).",
		perProbe: func(o *probe.Outcome, s *sink) { s.emit(o.DNS.Seconds()) }},
	{name: "probe_duration_seconds", help: "How long the whole probe took.",
		perProbe: func(o *probe.Outcome, s *sink) { s.emit(o.Duration.Seconds()) }},
	{name: "probe_ip_protocol", help: "The IP protocol of the address dialled: 4 or 6 (0 if none was).",
		perHost: func(h *hostItem, s *sink) { s.emit(float64(h.Result.IPProtocol)) }},
	{name: "probe_smtp_dane_authenticated", help: "1 if the TLSA answer for the host (or its denial) was DNSSEC-authenticated (dane).",
		perHost: func(h *hostItem, s *sink) {
			if d := h.DANE; d != nil {
				s.emit(boolFloat(d.Authenticated()))
			}
		}},
	{name: "probe_smtp_dane_tlsa_records", help: "Usable (DANE-TA or DANE-EE) TLSA records found for the host (dane).",
		perHost: func(h *hostItem, s *sink) {
			if d := h.DANE; d != nil {
				s.emit(float64(d.UsableRecords()))
			}
		}},
	{name: "probe_smtp_dane_verified", help: "1 if the certificate matched a usable TLSA record, 0 if not; absent when there is no authenticated usable TLSA record (dane).",
		perHost: func(h *hostItem, s *sink) {
			if v, ok := h.DANE.Verified(); ok {
				s.emit(boolFloat(v))
			}
		}},
	{name: "probe_smtp_delivery_seconds", help: "How long the probe's message took from the reply to the final \".\" until it was in the mailbox (delivery_check; absent when it did not arrive).",
		perHost: func(h *hostItem, s *sink) {
			if d := h.Delivery; d != nil && !d.SeenAt.IsZero() {
				s.emit(d.Delivery.Seconds())
			}
		}},
	{name: "probe_smtp_extension_info", help: "1 for each registered EHLO keyword the server advertised (after STARTTLS when TLS was started); see probe_smtp_extensions_unregistered for the others.",
		labels: []string{"extension"},
		perHost: func(h *hostItem, s *sink) {
			for _, ext := range h.Extensions {
				if registeredExtensions[ext] {
					s.emit(1, ext)
				}
			}
		}},
	{name: "probe_smtp_extensions_unregistered", help: "How many EHLO keywords the server advertised that are not in the IANA SMTP service extensions registry (not exported one by one, to bound the series).",
		perHost: func(h *hostItem, s *sink) {
			if h.Result.Extensions == nil {
				return
			}
			n := 0
			for _, ext := range h.Extensions {
				if !registeredExtensions[ext] {
					n++
				}
			}
			s.emit(float64(n))
		}},
	{name: "probe_smtp_failure_info", help: "1 when the probe failed: the phase it failed in and why.",
		labels: []string{"phase", "reason"},
		perHost: func(h *hostItem, s *sink) {
			if err := h.Result.Err; err != nil {
				s.emit(1, string(err.Phase), string(err.Reason))
			}
		}},
	{name: "probe_smtp_last_enhanced_status_info", help: "The RFC 3463 enhanced status code of the reply that decided the probe.",
		labels: []string{"code"},
		perHost: func(h *hostItem, s *sink) {
			if r := h.Result.DecidingReply(); r != nil && !r.Enhanced.IsZero() {
				s.emit(1, r.Enhanced.String())
			}
		}},
	{name: "probe_smtp_last_reply_code", help: "The code of the reply that decided the probe: the failing reply, or the reply to QUIT; 0 if none came.",
		perHost: func(h *hostItem, s *sink) {
			code := 0
			if r := h.Result.DecidingReply(); r != nil {
				code = r.Code
			}
			s.emit(float64(code))
		}},
	{name: "probe_smtp_message_size_limit_bytes", help: "The message size limit the server advertised with SIZE (absent when it advertised none, or SIZE 0: no fixed limit).",
		perHost: func(h *hostItem, s *sink) {
			if size, ok := h.Result.MessageSizeLimit(); ok {
				s.emit(float64(size))
			}
		}},
	{name: "probe_smtp_mta_sts_compliant", help: "1 if the MX host passes the checks of the domain's MTA-STS policy (an mx pattern matches it and its certificate is valid for its name), whatever the mode, else 0; absent without a policy (mta_sts).",
		perHost: func(h *hostItem, s *sink) {
			if c := h.MTASTSCompliant; c != nil {
				s.emit(boolFloat(*c))
			}
		}},
	{name: "probe_smtp_mta_sts_mx_matched", help: "1 if a pattern of the domain's MTA-STS policy matches this MX host, else 0 (mta_sts).",
		perHost: func(h *hostItem, s *sink) {
			if m := h.outcome.MTASTS; m != nil && m.Policy != nil && h.Name != "" {
				s.emit(boolFloat(m.Policy.Matches(h.Name)))
			}
		}},
	{name: "probe_smtp_mta_sts_policy_info", help: "1 when a valid MTA-STS policy was fetched, with its mode and id (mta_sts).",
		labels: []string{"mode", "id"},
		perProbe: func(o *probe.Outcome, s *sink) {
			if m := o.MTASTS; m != nil && m.Policy != nil && m.Record != nil {
				s.emit(1, m.Policy.Mode, m.Record.ID)
			}
		}},
	{name: "probe_smtp_mta_sts_policy_max_age_seconds", help: "The max_age of the domain's MTA-STS policy (mta_sts).",
		perProbe: func(o *probe.Outcome, s *sink) {
			if m := o.MTASTS; m != nil && m.Policy != nil {
				s.emit(float64(m.Policy.MaxAge))
			}
		}},
	{name: "probe_smtp_mx_hosts", help: "How many MX hosts the domain's lookup returned.",
		perProbe: func(o *probe.Outcome, s *sink) {
			if o.IsMX() {
				s.emit(float64(o.MXFound))
			}
		}},
	{name: "probe_smtp_mx_lookup_authenticated", help: "1 if the MX answer (or its denial) was DNSSEC-authenticated by the resolver (the AD bit), else 0 (mx_lookup).",
		perProbe: func(o *probe.Outcome, s *sink) {
			if o.IsMX() {
				s.emit(boolFloat(o.MXAuthenticated))
			}
		}},
	{name: "probe_smtp_phase_duration_seconds", help: "How long each phase of the dialog took.",
		labels: []string{"phase"},
		perHost: func(h *hostItem, s *sink) {
			for _, p := range h.Phases {
				s.emit(p.Duration.Seconds(), string(p.Phase))
			}
		}},
	{name: "probe_smtp_replies_total", help: "Replies received from this target with this module since the exporter started, by class.",
		counter: true, labels: []string{"class"},
		perHost: func(h *hostItem, s *sink) {
			for i, class := range replyClasses {
				s.emit(float64(h.counts[i]), class)
			}
		}},
	{name: "probe_smtp_reply_code", help: "The reply code received in each phase of the dialog.",
		labels: []string{"phase"},
		perHost: func(h *hostItem, s *sink) {
			for _, p := range h.Phases {
				if p.Reply != nil {
					s.emit(float64(p.Reply.Code), string(p.Phase))
				}
			}
		}},
	{name: "probe_smtp_tls_rpt_record", help: "1 if the domain publishes a valid v=TLSRPTv1 record at _smtp._tls, else 0 (dane or mta_sts with mx_lookup).",
		perProbe: func(o *probe.Outcome, s *sink) {
			if r := o.TLSRPT; r != nil {
				s.emit(boolFloat(r.Record != nil))
			}
		}},
	{name: "probe_ssl_earliest_cert_expiry", help: "The earliest expiry, as a unix time, of the certificates the server sent.",
		perHost: func(h *hostItem, s *sink) {
			if t := h.Result.TLS; t != nil {
				if exp := t.EarliestExpiry(); !exp.IsZero() {
					s.emit(float64(exp.Unix()))
				}
			}
		}},
	{name: "probe_ssl_last_chain_expiry_timestamp_seconds", help: "The last expiry, as a unix time, of the verified chains: when the server's certificate stops validating (as blackbox_exporter computes it; absent without a verified chain).",
		perHost: func(h *hostItem, s *sink) {
			if t := h.Result.TLS; t != nil {
				if exp := t.LastChainExpiry(); !exp.IsZero() {
					s.emit(float64(exp.Unix()))
				}
			}
		}},
	{name: "probe_ssl_last_chain_info", help: "Information about the server's certificate, as blackbox_exporter gives it (fingerprint, subject, issuer, DNS names, serial number).",
		labels: []string{"fingerprint_sha256", "issuer", "serialnumber", "subject", "subjectalternative"},
		perHost: func(h *hostItem, s *sink) {
			if t := h.Result.TLS; t != nil && len(t.PeerCertificates) > 0 {
				c := t.PeerCertificates[0]
				fp := sha256.Sum256(c.Raw)
				s.emit(1, hex.EncodeToString(fp[:]), smtp.SafeText(c.Issuer.String()), fmt.Sprintf("%x", c.SerialNumber.Bytes()),
					smtp.SafeText(c.Subject.String()), smtp.SafeText(strings.Join(c.DNSNames, ",")))
			}
		}},
	{name: "probe_success", help: "1 if every step of the SMTP dialog got the reply it needed, else 0.",
		perProbe: func(o *probe.Outcome, s *sink) { s.emit(boolFloat(o.Success)) }},
	{name: "probe_tls_cipher_info", help: "The TLS cipher suite negotiated (only when the handshake completed).",
		labels: []string{"cipher"},
		perHost: func(h *hostItem, s *sink) {
			if t := h.Result.TLS; t != nil && t.HandshakeComplete {
				s.emit(1, t.CipherSuiteName())
			}
		}},
	{name: "probe_tls_version_info", help: "The TLS version negotiated (only when the handshake completed).",
		labels: []string{"version"},
		perHost: func(h *hostItem, s *sink) {
			if t := h.Result.TLS; t != nil && t.HandshakeComplete {
				s.emit(1, t.VersionName())
			}
		}},
}

// registeredExtensions are the EHLO keywords of the IANA "SMTP Service
// Extensions" registry: the only ones exported as extension labels, so a
// server cannot make series by advertising (or rotating) other names.
var registeredExtensions = map[string]bool{}

func init() {
	for i := range families {
		families[i].headerText = families[i].header()
	}
	for _, k := range []string{"8BITMIME", "ATRN", "AUTH", "BINARYMIME", "BURL", "CHECKPOINT", "CHUNKING",
		"CONNEG", "CONPERM", "DELIVERBY", "DSN", "ENHANCEDSTATUSCODES", "ETRN", "EXPN", "FUTURERELEASE",
		"HELP", "LIMITS", "MT-PRIORITY", "MTRK", "NO-SOLICITING", "ONEX", "PIPELINING", "REQUIRETLS",
		"RRVS", "SAML", "SEND", "SIZE", "SMTPUTF8", "SOML", "STARTTLS", "SUBMITTER", "TURN", "UTF8SMTP",
		"VERB", "VRFY"} {
		registeredExtensions[k] = true
	}
}

// IsProbeFamily reports whether name is one of the probe metric families:
// the /metrics handler keeps the registry from writing one a second time.
func IsProbeFamily(name string) bool {
	for _, f := range families {
		if f.name == name {
			return true
		}
	}
	return false
}

// replyClasses are the "class" label values of probe_smtp_replies_total.
var replyClasses = [4]string{"2xx", "3xx", "4xx", "5xx"}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
