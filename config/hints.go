package config

import (
	"reflect"
	"slices"
	"strings"
)

// moduleHints say, for keys a module does not have, what to write instead:
// blackbox_exporter's module keys, and the ways people guess the SMTP ones.
var moduleHints = map[string]string{
	"prober": "blackbox_exporter's prober: this exporter's one prober is SMTP, and a module needs no prober key: leave it out",
	"tcp": "blackbox_exporter's tcp prober section: write its settings in the module itself (tls, tls_config, " +
		"ip_protocol, ...); the SMTP dialog that query_response scripts there is built in here",
	"smtp":                  "write the module's keys directly under its name, without an smtp section",
	"http":                  "blackbox_exporter's http prober: this exporter probes SMTP only",
	"icmp":                  "blackbox_exporter's icmp prober: this exporter probes SMTP only",
	"dns":                   "blackbox_exporter's dns prober: this exporter probes SMTP only (the probe's DNS server is resolver)",
	"grpc":                  "blackbox_exporter's grpc prober: this exporter probes SMTP only",
	"preferred_ip_protocol": "blackbox_exporter's preferred_ip_protocol is ip_protocol here (ip4 or ip6); ip_protocol_fallback (default true) tries the other protocol when the target has no address of the preferred one",
	"query_response": "blackbox_exporter's query_response scripts a dialog; here the SMTP dialog is built in: EHLO always, " +
		"tls: starttls for STARTTLS, mail_from for MAIL FROM, rcpt_to for RCPT TO, send_data for DATA, " +
		"and expect_reply for the reply class a phase must get (expect_reply: {rcpt: 5xx})",
	"source_ip_address": "blackbox_exporter's source_ip_address is not supported: the probe connects from the address the system picks",
	"dns_sd_config":     "not supported: list the targets in Prometheus, or under the top-level targets",
	"target":            "a module has no target: each probe names its own (/probe?target=, the probe command), or the top-level targets list does",
	"targets":           "static targets are listed at the top level (targets: [{target: mx.example.org, module: NAME}]); auth.targets lists where the credentials may go",
	"starttls":          "write tls: starttls",
	"ssl":               "write tls: implicit (TLS from the first byte, port 465) or tls: starttls",
	"smtps":             "write tls: implicit (TLS from the first byte, port 465)",
	"implicit_tls":      "write tls: implicit",
	"from":              "write mail_from (the address of MAIL FROM)",
	"sender":            "write mail_from (the address of MAIL FROM)",
	"mail":              "write mail_from (the address of MAIL FROM)",
	"to":                "write rcpt_to, a list (rcpt_to: [postmaster@example.org])",
	"rcpt":              "write rcpt_to, a list (rcpt_to: [postmaster@example.org])",
	"recipient":         "write rcpt_to, a list (rcpt_to: [postmaster@example.org])",
	"recipients":        "write rcpt_to, a list (rcpt_to: [postmaster@example.org])",
	"data":              "write send_data: true",
	"ehlo":              "write helo_name (the name sent with EHLO and HELO)",
	"hostname":          "write helo_name (the name sent with EHLO and HELO)",
	"mx":                "write mx_lookup: true (the target is then a domain whose MX hosts are probed)",
	"username":          "goes in the auth section (auth: {username: ..., password_file: ...})",
	"password":          "goes in the auth section (auth: {username: ..., password_file: ...})",
	"password_file":     "goes in the auth section (auth: {username: ..., password_file: ...})",
	"mechanism":         "goes in the auth section (auth: {username: ..., mechanism: PLAIN})",
	"allow_plaintext":   "goes in the auth section (auth: {..., allow_plaintext: true})",
}

// tlsKeys are prometheus/common's TLS keys, which go in a tls_config.
var tlsKeys = []string{"insecure_skip_verify", "ca_file", "cert_file", "key_file", "server_name", "min_version",
	"max_version", "ca", "cert", "key"}

// unknownKey says what is wrong with key in a section of type t and what
// to write instead.
func unknownKey(t reflect.Type, key string) string {
	known := keyNames(t)
	if h, ok := moduleHints[key]; ok && t == moduleType {
		return "unknown key: " + h
	}
	if _, ok := yamlFields(t)["tls_config"]; ok && slices.Contains(tlsKeys, key) {
		return "unknown key: " + key + " goes in tls_config (tls_config: {" + key + ": ...})"
	}
	if s := nearest(key, known); s != "" {
		return "unknown key: did you mean " + s + "?"
	}
	return "unknown key (the keys here are " + strings.Join(known, ", ") + ")"
}

// nearest is the known key closest to key by edit distance, when it is
// close enough to be a typo (at most 2 edits, or a third of the key), or
// else the one known key that key begins (helo: helo_name) or that begins
// key (timeout_seconds: timeout).
func nearest(key string, known []string) string {
	lower := strings.ToLower(key)
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := editDistance(lower, k); d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= max(2, len(key)/3) && bestD < len(key) {
		return best
	}
	var prefixed []string
	for _, k := range known {
		if (len(lower) >= 3 && strings.HasPrefix(k, lower)) || (len(k) >= 3 && strings.HasPrefix(lower, k)) {
			prefixed = append(prefixed, k)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
