package config

import (
	"regexp"
	"strings"
	"testing"
)

// TestConfigErrorsInWords: every error names the line, the key's path and
// the value, in the words of the config file (no Go type names); an
// unknown key gets the nearest known one, or what to write instead of a
// blackbox_exporter key.
func TestConfigErrorsInWords(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"modules:\n  default:\n    port: smtp\n",
			"config c.yml:3: modules.default.port: \"smtp\" is not a port number from 1 to 65535"},
		{"modules:\n  default:\n    port: 0\n",
			"config c.yml:3: modules.default.port: 0 is not a port number: write one from 1 to 65535, or leave port out for 25"},
		{"modules:\n  default:\n    port: 70000\n",
			"config c.yml:3: modules.default.port: \"70000\" is not a port number from 1 to 65535"},
		{"modules:\n  default:\n    port: -1\n",
			"config c.yml:3: modules.default.port: \"-1\" is not a port number from 1 to 65535"},
		{"modules:\n  default:\n    preferred_ip_protocol: ip4\n",
			"config c.yml:3: modules.default.preferred_ip_protocol: unknown key: blackbox_exporter's preferred_ip_protocol is ip_protocol here (ip4 or ip6); ip_protocol_fallback (default true) tries the other protocol when the target has no address of the preferred one"},
		{"modules:\n  default:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: \"^220\"\n",
			"config c.yml:3: modules.default.prober: unknown key: blackbox_exporter's prober: this exporter's one prober is SMTP, and a module needs no prober key: leave it out"},
		{"modules:\n  default:\n    query_response: []\n",
			"config c.yml:3: modules.default.query_response: unknown key: blackbox_exporter's query_response scripts a dialog; here the SMTP dialog is built in: EHLO always, tls: starttls for STARTTLS, mail_from for MAIL FROM, rcpt_to for RCPT TO, send_data for DATA, and expect_reply for the reply class a phase must get (expect_reply: {rcpt: 5xx})"},
		{"modules:\n  default:\n    tls: true\n",
			"config c.yml:3: modules.default.tls: \"true\" is not none, starttls or implicit: blackbox_exporter's tls: true (TLS from the first byte) is tls: implicit here, and STARTTLS is tls: starttls"},
		{"modules:\n  default:\n    tls: false\n",
			"config c.yml:3: modules.default.tls: \"false\" is not none, starttls or implicit: write tls: none for plain SMTP"},
		{"modules:\n  default:\n    helo: x\n",
			"config c.yml:3: modules.default.helo: unknown key: did you mean helo_name?"},
		{"modules:\n  default:\n    helo_nam: x\n",
			"config c.yml:3: modules.default.helo_nam: unknown key: did you mean helo_name?"},
		{"modules:\n  default:\n    insecure_skip_verify: true\n",
			"config c.yml:3: modules.default.insecure_skip_verify: unknown key: insecure_skip_verify goes in tls_config (tls_config: {insecure_skip_verify: ...})"},
		{"modules:\n  default:\n    source_ip_address: 127.0.0.1\n",
			"config c.yml:3: modules.default.source_ip_address: unknown key: blackbox_exporter's source_ip_address is not supported: the probe connects from the address the system picks"},
		{"modules:\n  default:\n    timeout: soon\n",
			"config c.yml:3: modules.default.timeout: \"soon\" is not a duration: write a number and a unit, such as 10s, 1m30s or 2h"},
		{"modules:\n  default:\n    timeout: 0s\n",
			"config c.yml:3: modules.default.timeout: 0s is not a positive duration: write one such as 10s"},
		{"modules:\n  default:\n    rcpt_to: a@example.org\n    mail_from: b@example.org\n",
			"config c.yml:3: modules.default.rcpt_to: \"a@example.org\" is one value: write a list, such as [a@example.org]"},
		{"modules:\n  default:\n    helo_name: [a, b]\n",
			"config c.yml:3: modules.default.helo_name: want one value here, not a list"},
		{"modules:\n  default:\n    tls_config: true\n",
			"config c.yml:3: modules.default.tls_config: want keys and values here, not one value \"true\""},
		{"modules:\n  default:\n    tls: starttls\n    tls_config:\n      insecure_skip_verify: maybe\n",
			"config c.yml:5: modules.default.tls_config.insecure_skip_verify: \"maybe\" is not true or false"},
		{"modules:\n  default:\n    tls: starttls\n    tls_config:\n      min_version: TLS14\n",
			"config c.yml:5: modules.default.tls_config.min_version: \"TLS14\" is not a TLS version: write TLS10, TLS11, TLS12 or TLS13"},
		{"modules:\n  default:\n    tls: starttls\n    tls_config:\n      ca_file: a\n      ca: b\n",
			"config c.yml:5: modules.default.tls_config: at most one of ca, ca_file & ca_ref must be configured"},
		{"modules:\n  default:\n    tls: starttls\n    tls_config:\n      cafile: a\n",
			"config c.yml:5: modules.default.tls_config.cafile: unknown key: did you mean ca_file?"},
		{"modules:\n  default:\n    mx_max_hosts: five\n",
			"config c.yml:3: modules.default.mx_max_hosts: \"five\" is not a whole number"},
		{"modules:\n  default:\n    send_data: yes\n",
			"config c.yml:3: modules.default.send_data: needs rcpt_to: DATA comes after RCPT TO"},
		{"modules:\n  default:\n    send_data: maybe\n",
			"config c.yml:3: modules.default.send_data: \"maybe\" is not true or false"},
		{"modules:\n  default:\n    expect_reply: {foo: 5xx}\n",
			"config c.yml:3: modules.default.expect_reply.foo: \"foo\" is not a phase that can carry an expectation (banner, ehlo, starttls, auth, mail, rcpt, data, message)"},
		{"modules:\n  default:\n    expect_reply: {rcpt: 6xx}\n    mail_from: a@b.c\n    rcpt_to: [d@e.f]\n",
			"config c.yml:3: modules.default.expect_reply.rcpt: \"6xx\" is not a reply class: write 2xx, 4xx or 5xx"},
		{"modules:\n  default:\n    auth: {username: u}\n    tls: starttls\n",
			"config c.yml:3: modules.default.auth: needs password_file (or password)"},
		{"modules:\n  default:\n    auth: {password: p}\n    tls: starttls\n",
			"config c.yml:3: modules.default.auth: needs a username"},
		{"modules:\n  default:\n    auth: {username: u, password: p, mechanism: GSSAPI}\n    tls: starttls\n",
			"config c.yml:3: modules.default.auth.mechanism: \"GSSAPI\" is not PLAIN, LOGIN, CRAM-MD5, XOAUTH2 or OAUTHBEARER"},
		{"modules:\n  default:\n    auth: {username: u, password: p, mechanism: XOAUTH2}\n    tls: starttls\n",
			"config c.yml:3: modules.default.auth.password: is not used by mechanism XOAUTH2, which takes a bearer token from oauth2 or bearer_token_file"},
		{"modules:\n  default:\n    auth: {username: u, pasword: p}\n    tls: starttls\n",
			"config c.yml:3: modules.default.auth.pasword: unknown key: did you mean password?"},
		{"modules:\n  default:\n    username: u\n",
			"config c.yml:3: modules.default.username: unknown key: goes in the auth section (auth: {username: ..., password_file: ...})"},
		{"modules:\n  default: {}\n  default: {}\n",
			"config c.yml:3: modules.default: set twice (lines 2 and 3): keep one"},
		{"modules:\n  default:\n    port: 25\n    port: 26\n",
			"config c.yml:4: modules.default.port: set twice (lines 3 and 4): keep one"},
		{"modules:\n  default: {}\ntargets:\n  - target: 127.0.0.1\n    module: nope\n",
			"config c.yml:5: targets[0].module: unknown module \"nope\" (the modules are \"default\")"},
		{"modules:\n  default: {}\n  other: {}\ntargets:\n  - targt: 127.0.0.1\n",
			"config c.yml:5: targets[0].targt: unknown key: did you mean target?"},
		{"modules:\n  default: {}\ntargets: 127.0.0.1\n",
			"config c.yml:3: targets: \"127.0.0.1\" is one value: write a list, such as [127.0.0.1]"},
		{"modules:\n  default: {}\nprobe_policy:\n  allow: [10.0.0.0/33]\n",
			"config c.yml:4: probe_policy.allow[0]: \"10.0.0.0/33\" is not a CIDR such as 192.0.2.0/24: prefix length out of range"},
		{"modules:\n  default: {}\nprobe_policy:\n  denied: []\n",
			"config c.yml:4: probe_policy.denied: unknown key (the keys here are allow, deny)"},
		{"module:\n  default: {}\n",
			"config c.yml:1: module: unknown key: did you mean modules?"},
		{"modules: []\n",
			"config c.yml:1: modules: want keys and values here, not a list"},
		{"modules:\n",
			"config c.yml:1: modules: no module is defined: write at least one, such as modules: {default: {}}"},
		{"foo: bar\n",
			"config c.yml:1: foo: unknown key (the keys here are modules, targets, probe_policy)"},
		{"modules:\n  base: &b {helo_name: a.b, port: x}\n  other:\n    <<: *b\n",
			"config c.yml:2: modules.base.port: \"x\" is not a port number from 1 to 65535"},
		{"modules:\n  default:\n    delivery_check: {imap: x}\n    mail_from: a@b.c\n    rcpt_to: [d@e.f]\n    send_data: true\n",
			"config c.yml:3: modules.default.delivery_check: needs a username"},
		{"modules:\n  default:\n    delivery_check: {imap: x, username: u, password: p, tls: none}\n    mail_from: a@b.c\n    rcpt_to: [d@e.f]\n    send_data: true\n",
			"config c.yml:3: modules.default.delivery_check.tls: none would send the IMAP password in clear: write starttls or implicit, or set delivery_check.allow_plaintext: true"},
		{"modules:\n  default:\n    delivery_check: {imap: x, username: u, password: p, mailboxx: y}\n    mail_from: a@b.c\n    rcpt_to: [d@e.f]\n    send_data: true\n",
			"config c.yml:3: modules.default.delivery_check.mailboxx: unknown key: did you mean mailbox?"},
		{"modules:\n  default:\n    resolver: 127.0.0.1\n",
			"config c.yml:3: modules.default.resolver: \"127.0.0.1\" is not host:port, such as 127.0.0.1:53"},
		{"modules:\n  default:\n    ip_protocol: ipv4\n",
			"config c.yml:3: modules.default.ip_protocol: \"ipv4\" is not ip4 or ip6"},
		{"modules:\n  default:\n    ip_protocol_fallback: nope\n",
			"config c.yml:3: modules.default.ip_protocol_fallback: \"nope\" is not true or false"},
		{"modules:\n  default:\n    mta_sts: true\n",
			"config c.yml:3: modules.default.mta_sts: needs mx_lookup: a policy is a domain's, checked against its MX hosts"},
		{"modules:\n  default:\n    dane: true\n",
			"config c.yml:3: modules.default.dane: needs tls: starttls or implicit: DANE verifies the certificate of a TLS connection"},
		{"modules:\n  \"my mod\":\n    foo: 1\n",
			"config c.yml:3: modules.\"my mod\".foo: unknown key (the keys here are timeout, helo_name, port, tls, tls_config, auth, mail_from, rcpt_to, send_data, ip_protocol, ip_protocol_fallback, resolver, mx_lookup, mx_success, mx_max_hosts, expect_reply, delivery_check, addresses, dane, mta_sts, mta_sts_tls_config)"},
		{"modules:\n  default:\n    timeout: 10\n",
			"config c.yml:3: modules.default.timeout: \"10\" is not a duration: write it with a unit, such as 10s"},
		{"modules:\n  default:\n    from: a@b.c\n",
			"config c.yml:3: modules.default.from: unknown key: write mail_from (the address of MAIL FROM)"},
		{"modules:\n  default:\n    mail_from: \"a b@c\"\n",
			"config c.yml:3: modules.default.mail_from: \"a b@c\" contains ' '"},
		{"modules:\n  default:\n    mail_from: a@b.c\n    rcpt_to: [\"x\\r\\ny@z\"]\n",
			"config c.yml:3: modules.default.rcpt_to[0]: \"x\\r\\ny@z\" contains a line break"},
		{"modules:\n  default:\n    ? [a]\n    : b\n",
			"config c.yml:3: modules.default: a key must be a plain word, not a list or a section"},
		{"modules:\n  default:\n    http: {}\n",
			"config c.yml:3: modules.default.http: unknown key: blackbox_exporter's http prober: this exporter probes SMTP only"},
		{"modules:\n  default:\n    targets: [a]\n",
			"config c.yml:3: modules.default.targets: unknown key: static targets are listed at the top level (targets: [{target: mx.example.org, module: NAME}]); auth.targets lists where the credentials may go"},
		{"modules:\n  default:\n    addresses: every\n",
			"config c.yml:3: modules.default.addresses: \"every\" is not first or all"},
		{"modules:\n  default:\n    mx_lookup: 1\n",
			"config c.yml:3: modules.default.mx_lookup: \"1\" is not true or false"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), ".")
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if got := FileError("c.yml", nil, err).Error(); got != tc.want {
				t.Errorf("config:\n%s\n got: %s\nwant: %s", tc.yaml, got, tc.want)
			}
			if leak := goInternals(err.Error()); leak != "" {
				t.Errorf("the error shows Go's %q: %s", leak, err)
			}
		})
	}
}

// goInternals returns what in msg is Go's rather than the config file's:
// YAML tags, Go type names, decoder words.
func goInternals(msg string) string {
	if m := goPackage.FindString(msg); m != "" {
		return m
	}
	for _, s := range []string{"!!", "unmarshal", "uint", "int64", "float64", "map[", "[]string", "struct",
		"reflect", "yaml:", "promconfig", "model.", "netip.", "strconv.", "time.ParseDuration", "<nil>", "%!"} {
		if strings.Contains(msg, s) {
			return s
		}
	}
	return ""
}

// goPackage matches a Go qualified name (config.moduleKeys), not a key
// path (tls_config.ca_file, modules.default).
var goPackage = regexp.MustCompile(`\b(config|yaml|smtp|promconfig|model|netip|net|os|reflect)\.[A-Za-z]*[A-Z(]`)

// TestGoInternalsSeesTheOldMessages: the check above catches what the
// decoder used to show.
func TestGoInternalsSeesTheOldMessages(t *testing.T) {
	for _, msg := range []string{
		"yaml: unmarshal errors:\n  line 4: field helo not found in type config.moduleKeys",
		"line 3: cannot unmarshal !!str `smtp` into uint16",
		`"10.0.0.0/40" is not a CIDR: netip.ParsePrefix("10.0.0.0/40"): prefix length out of range`,
	} {
		if goInternals(msg) == "" {
			t.Errorf("goInternals misses %q", msg)
		}
	}
}
