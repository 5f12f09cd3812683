// Package config is what the user wrote in the configuration file, as plain
// data: the YAML types, their defaults, and every check of what they hold,
// done while decoding (in UnmarshalYAML; schema.go walks the file beside the
// types first), so that an error names the line, the key's path and the
// value in the words of the file (errors.go). Nothing here dials, reads a file other than the config
// itself, or holds runtime state: a module is compiled into a probe plan by
// package probe, once per load. SafeConfig swaps configurations on reload.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Config is the whole configuration file.
type Config struct {
	Modules     map[string]*Module `yaml:"modules"`
	Targets     []StaticTarget     `yaml:"targets,omitempty"`
	ProbePolicy ProbePolicy        `yaml:"probe_policy,omitempty"`

	// lines maps each key's path (KeyPath) to its line in the file.
	lines map[string]int
}

// StaticTarget is a target probed on every scrape of /metrics.
type StaticTarget struct {
	Target string `yaml:"target"`
	Module string `yaml:"module,omitempty"`
}

// Module says what a probe does. Its fields are the config file's keys.
type Module struct {
	Timeout            model.Duration        `yaml:"timeout,omitempty"`
	HeloName           string                `yaml:"helo_name,omitempty"`
	Port               uint16                `yaml:"port,omitempty"`
	TLS                smtp.TLSMode          `yaml:"tls,omitempty"`
	TLSConfig          promconfig.TLSConfig  `yaml:"tls_config,omitempty"`
	Auth               *AuthConfig           `yaml:"auth,omitempty"`
	MailFrom           string                `yaml:"mail_from,omitempty"`
	RcptTo             []string              `yaml:"rcpt_to,omitempty"`
	SendData           bool                  `yaml:"send_data,omitempty"`
	IPProtocol         string                `yaml:"ip_protocol,omitempty"`
	IPProtocolFallback *bool                 `yaml:"ip_protocol_fallback,omitempty"`
	Resolver           string                `yaml:"resolver,omitempty"`
	MXLookup           bool                  `yaml:"mx_lookup,omitempty"`
	MXSuccess          MXSuccess             `yaml:"mx_success,omitempty"`
	MXMaxHosts         int                   `yaml:"mx_max_hosts,omitempty"`
	ExpectReply        map[smtp.Phase]string `yaml:"expect_reply,omitempty"`
	DeliveryCheck      *DeliveryCheck        `yaml:"delivery_check,omitempty"`
	// Addresses is first (the first usable address) or all (every A and
	// AAAA of the target, or of each MX host, each probed).
	Addresses       string               `yaml:"addresses,omitempty"`
	DANE            bool                 `yaml:"dane,omitempty"`
	MTASTS          bool                 `yaml:"mta_sts,omitempty"`
	MTASTSTLSConfig promconfig.TLSConfig `yaml:"mta_sts_tls_config,omitempty"`

	// portDefaulted is true when the file leaves port out: it follows tls.
	portDefaulted bool
}

// AuthConfig holds AUTH credentials: a password (PLAIN, LOGIN, CRAM-MD5) or
// an OAuth 2.0 bearer token (XOAUTH2, OAUTHBEARER) from a token endpoint
// (OAuth2, prometheus/common's block) or a file. Secrets are Secret: never
// printed. Targets binds the credentials to the servers they belong to.
type AuthConfig struct {
	Username       string            `yaml:"username"`
	Password       promconfig.Secret `yaml:"password,omitempty"`
	PasswordFile   string            `yaml:"password_file,omitempty"`
	Mechanism      string            `yaml:"mechanism,omitempty"`
	AllowPlaintext bool              `yaml:"allow_plaintext,omitempty"`
	// OAuth2 gets the token by the client credentials grant.
	OAuth2 *promconfig.OAuth2 `yaml:"oauth2,omitempty"`
	// BearerTokenFile holds a token that something else keeps fresh; it
	// is read at every probe.
	BearerTokenFile string `yaml:"bearer_token_file,omitempty"`
	// Targets lists, besides the static targets of the module, where /probe
	// may send these credentials: host, host:port or *.example.org.
	Targets []string `yaml:"targets,omitempty"`
}

// Defaults and bounds.
const (
	DefaultModuleName = "default"
	DefaultTimeout    = 10 * time.Second
	DefaultMXMaxHosts = 5
	// MaxMXHosts bounds mx_max_hosts: every exchanger is a connection and a
	// set of series.
	MaxMXHosts = 20
)

// DefaultHeloName is the machine's host name when it is a valid EHLO
// argument, else "localhost".
func DefaultHeloName() string {
	if h, err := os.Hostname(); err == nil && smtp.CheckHeloName(h) == nil {
		return h
	}
	return "localhost"
}

// moduleKeys is Module without its UnmarshalYAML.
type moduleKeys Module

// UnmarshalYAML sets the defaults, decodes the module and checks it.
func (m *Module) UnmarshalYAML(unmarshal func(any) error) error {
	*m = Module{Timeout: model.Duration(DefaultTimeout), TLS: smtp.TLSNone, IPProtocol: "ip4",
		MXSuccess: MXSuccessAll, MXMaxHosts: DefaultMXMaxHosts, Addresses: AddressesFirst}
	if err := unmarshal((*moduleKeys)(m)); err != nil {
		return err
	}
	// port: 0 is refused, not read as "the default". (Parse decodes with
	// yaml v3, not strictly: its walk has checked every key already.)
	var set struct {
		Port *uint16 `yaml:"port"`
	}
	if err := unmarshal(&set); err != nil {
		return err
	}
	if m.HeloName == "" {
		m.HeloName = DefaultHeloName()
	}
	if m.IPProtocolFallback == nil {
		t := true
		m.IPProtocolFallback = &t
	}
	if set.Port == nil {
		m.Port, m.portDefaulted = defaultPort(m.TLS), true
	}
	return m.validate()
}

// defaultPort is a target's port when neither it nor the module names one.
func defaultPort(tls smtp.TLSMode) uint16 {
	if tls == smtp.TLSImplicit {
		return 465
	}
	return 25
}

// validate checks the module; each error is a KeyError at the key that is
// wrong, relative to the module.
func (m *Module) validate() error {
	if m.Timeout <= 0 {
		return at("timeout", "%s is not a positive duration: write one such as 10s", m.Timeout)
	}
	if m.Port == 0 {
		return at("port", "0 is not a port number: write one from 1 to 65535, or leave port out for %d", defaultPort(m.TLS))
	}
	if err := smtp.CheckHeloName(m.HeloName); err != nil {
		return at("helo_name", "%w", err)
	}
	if err := checkTLSMode(m.TLS); err != nil {
		return AtKey(err, "tls")
	}
	if m.TLS == smtp.TLSNone && m.TLSConfig != (promconfig.TLSConfig{}) {
		return at("tls_config", "is set, but tls is none: set tls: starttls or implicit, or leave tls_config out")
	}
	switch m.IPProtocol {
	case "ip4", "ip6":
	default:
		return at("ip_protocol", "%q is not ip4 or ip6", m.IPProtocol)
	}
	if m.Resolver != "" {
		if _, _, err := net.SplitHostPort(m.Resolver); err != nil {
			return at("resolver", "%q is not host:port, such as 127.0.0.1:53", m.Resolver)
		}
	}
	switch m.MXSuccess {
	case MXSuccessAll, MXSuccessAny, MXSuccessPrimary:
	default:
		return at("mx_success", "%q is not all, any or primary", m.MXSuccess)
	}
	if m.MXMaxHosts < 1 || m.MXMaxHosts > MaxMXHosts {
		return at("mx_max_hosts", "%d is not from 1 to %d", m.MXMaxHosts, MaxMXHosts)
	}
	if err := m.validateTransaction(); err != nil {
		return err
	}
	if err := m.validatePaths(); err != nil {
		return err
	}
	if m.Auth != nil {
		if m.TLS == smtp.TLSNone && !m.Auth.AllowPlaintext {
			return at("auth", "with tls: none would send the password in clear: set tls: starttls or implicit, or auth.allow_plaintext: true")
		}
	}
	return m.validateExpectations()
}

// checkTLSMode checks a tls key's value.
func checkTLSMode(mode smtp.TLSMode) error {
	switch mode {
	case smtp.TLSNone, smtp.TLSStartTLS, smtp.TLSImplicit:
		return nil
	case "true", "yes", "on":
		return keyErrorf(nil, "%q is not none, starttls or implicit: blackbox_exporter's tls: true (TLS from the first byte) is tls: implicit here, and STARTTLS is tls: starttls", string(mode))
	case "false", "no", "off":
		return keyErrorf(nil, "%q is not none, starttls or implicit: write tls: none for plain SMTP", string(mode))
	}
	return keyErrorf(nil, "%q is not none, starttls or implicit", string(mode))
}

func (m *Module) validateTransaction() error {
	if m.MailFrom != "" && m.MailFrom != "<>" {
		if err := smtp.CheckMailbox(m.MailFrom); err != nil {
			return at("mail_from", "%w", err)
		}
	}
	for i, rcpt := range m.RcptTo {
		if err := smtp.CheckMailbox(rcpt); err != nil {
			return keyErrorf([]string{"rcpt_to", Index(i)}, "%w", err)
		}
	}
	if len(m.RcptTo) > 0 && m.MailFrom == "" {
		return at("rcpt_to", "needs mail_from: RCPT TO comes after MAIL FROM")
	}
	if m.SendData && len(m.RcptTo) == 0 {
		return at("send_data", "needs rcpt_to: DATA comes after RCPT TO")
	}
	if m.DeliveryCheck != nil {
		switch {
		case !m.SendData:
			return at("delivery_check", "needs send_data (and mail_from, rcpt_to): there is no message to wait for")
		case m.MXLookup:
			return at("delivery_check", "cannot go with mx_lookup: every exchanger would send a message of its own")
		case len(m.ExpectReply) > 0:
			return at("delivery_check", "cannot go with expect_reply: the dialog must deliver the message")
		}
	}
	return nil
}

// The values of addresses.
const (
	AddressesFirst = "first"
	AddressesAll   = "all"
)

// validatePaths checks the keys of "every path a sender may take".
func (m *Module) validatePaths() error {
	switch m.Addresses {
	case AddressesFirst, AddressesAll:
	default:
		return at("addresses", "%q is not first or all", m.Addresses)
	}
	if m.DANE && m.TLS == smtp.TLSNone {
		return at("dane", "needs tls: starttls or implicit: DANE verifies the certificate of a TLS connection")
	}
	if m.MTASTS && !m.MXLookup {
		return at("mta_sts", "needs mx_lookup: a policy is a domain's, checked against its MX hosts")
	}
	if err := m.mtastsCanPass(); err != nil {
		return err
	}
	if m.MTASTSTLSConfig != (promconfig.TLSConfig{}) && !m.MTASTS {
		return at("mta_sts_tls_config", "is set, but mta_sts is not")
	}
	if m.DeliveryCheck != nil && m.Addresses == AddressesAll {
		return at("delivery_check", "cannot go with addresses: all: every address would send a message of its own")
	}
	return nil
}

// expectable lists the phases an expectation may name, in dialog order.
var expectable = []smtp.Phase{smtp.PhaseBanner, smtp.PhaseEHLO, smtp.PhaseStartTLS, smtp.PhaseAuth,
	smtp.PhaseMail, smtp.PhaseRcpt, smtp.PhaseData, smtp.PhaseMessage}

func (m *Module) validateExpectations() error {
	for _, phase := range sortedKeys(m.ExpectReply) {
		key := []string{"expect_reply", string(phase)}
		if !slices.Contains(expectable, phase) {
			return keyErrorf(key, "%q is not a phase that can carry an expectation (%s)", phase, phaseList(expectable))
		}
		class, err := ParseReplyClass(m.ExpectReply[phase])
		if err != nil {
			return keyErrorf(key, "%w", err)
		}
		if class == 3 {
			// A 3xx reply opens an exchange (DATA's 354, AUTH's 334) that
			// the probe cannot end politely from there.
			return keyErrorf(key, "3xx cannot end the dialog (it leaves DATA or AUTH open): expect 2xx, 4xx or 5xx")
		}
		if !m.reaches(phase) {
			return keyErrorf(key, "this module never reaches phase %s", phase)
		}
	}
	return nil
}

// reaches reports whether the module's dialog has the phase.
func (m *Module) reaches(p smtp.Phase) bool {
	switch p {
	case smtp.PhaseStartTLS:
		return m.TLS == smtp.TLSStartTLS
	case smtp.PhaseAuth:
		return m.Auth != nil
	case smtp.PhaseMail:
		return m.MailFrom != ""
	case smtp.PhaseRcpt:
		return len(m.RcptTo) > 0
	case smtp.PhaseData, smtp.PhaseMessage:
		return m.SendData
	}
	return true
}

func phaseList(ps []smtp.Phase) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// ParseReplyClass reads "2xx" to "5xx" as 2 to 5.
func ParseReplyClass(s string) (int, error) {
	if len(s) == 3 && s[0] >= '2' && s[0] <= '5' && strings.EqualFold(s[1:], "xx") {
		return int(s[0] - '0'), nil
	}
	return 0, fmt.Errorf("%q is not a reply class: write 2xx, 4xx or 5xx", s)
}

type authKeys AuthConfig

// UnmarshalYAML decodes the auth section and checks it.
func (a *AuthConfig) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal((*authKeys)(a)); err != nil {
		return err
	}
	if a.Username == "" {
		return keyErrorf(nil, "needs a username")
	}
	if strings.ContainsFunc(a.Username, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return at("username", "%q contains a space or a control character", a.Username)
	}
	if err := a.validateCredentials(); err != nil {
		return err
	}
	for i, t := range a.Targets {
		if _, err := ParsePattern(t, true); err != nil {
			return keyErrorf([]string{"targets", Index(i)}, "%w", err)
		}
	}
	return nil
}

// checkCredentials checks a username and where its password comes from
// (auth, delivery_check).
func checkCredentials(username string, password promconfig.Secret, passwordFile string) error {
	if username == "" {
		return keyErrorf(nil, "needs a username")
	}
	if strings.ContainsFunc(username, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return at("username", "%q contains a space or a control character", username)
	}
	switch {
	case password != "" && passwordFile != "":
		return at("password_file", "is set together with password: keep one of them")
	case password == "" && passwordFile == "":
		return keyErrorf(nil, "needs password_file (or password)")
	}
	return nil
}

type staticTargetKeys StaticTarget

// UnmarshalYAML decodes a static target; the module defaults to "default".
func (t *StaticTarget) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal((*staticTargetKeys)(t)); err != nil {
		return err
	}
	if t.Module == "" {
		t.Module = DefaultModuleName
	}
	return nil
}

// lazyModule holds a module's YAML until its name is known, so that every
// error in it can say which module it is in.
type lazyModule struct{ unmarshal func(any) error }

func (l *lazyModule) UnmarshalYAML(unmarshal func(any) error) error {
	l.unmarshal = unmarshal
	return nil
}

// fileKeys is Config with its modules not decoded yet.
type fileKeys struct {
	Modules     map[string]*lazyModule `yaml:"modules"`
	Targets     []StaticTarget         `yaml:"targets"`
	ProbePolicy ProbePolicy            `yaml:"probe_policy"`
}

// UnmarshalYAML decodes the whole file, then checks what spans sections:
// every static target names a module, reads as that module reads targets,
// and is listed once.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	var raw fileKeys
	if err := unmarshal(&raw); err != nil {
		return err
	}
	if len(raw.Modules) == 0 {
		return errNoModules()
	}
	c.Targets, c.ProbePolicy = raw.Targets, raw.ProbePolicy
	c.Modules = make(map[string]*Module, len(raw.Modules))
	for _, name := range sortedKeys(raw.Modules) {
		lm := raw.Modules[name]
		if lm == nil {
			return keyErrorf([]string{"modules", name}, "is empty: write {} for all the defaults")
		}
		m := &Module{}
		if err := lm.unmarshal(m); err != nil {
			return AtKey(err, "modules", name)
		}
		c.Modules[name] = m
	}
	seen := make(map[[2]string]int, len(c.Targets))
	for i, t := range c.Targets {
		m, ok := c.Modules[t.Module]
		if !ok {
			return keyErrorf([]string{"targets", Index(i), "module"}, "%s", c.UnknownModule(t.Module))
		}
		key, err := m.TargetKey(t.Target)
		if err != nil {
			return keyErrorf([]string{"targets", Index(i), "target"}, "%w", err)
		}
		if j, dup := seen[[2]string{key, t.Module}]; dup {
			return keyErrorf([]string{"targets", Index(i), "target"}, "%q with module %q is targets[%d] (%q) again", t.Target, t.Module, j, c.Targets[j].Target)
		}
		seen[[2]string{key, t.Module}] = i
	}
	return nil
}

func errNoModules() error {
	return keyErrorf([]string{"modules"}, "no module is defined: write at least one, such as modules: {default: {}}")
}

// UnknownModule says that name is not a module of c, and which are.
func (c *Config) UnknownModule(name string) string {
	names := sortedKeys(c.Modules)
	for i, n := range names {
		names[i] = strconv.Quote(n)
	}
	return fmt.Sprintf("unknown module %q (the modules are %s)", name, strings.Join(names, ", "))
}

// TargetKey is target as this module reads it, normalised: "host:port"
// (lower case, no trailing dot, the module's port by default) or, with
// mx_lookup, the domain. Two spellings of one target have one key.
func (m *Module) TargetKey(target string) (string, error) {
	if m.MXLookup {
		return ParseDomain(target)
	}
	host, port, err := ParseTarget(target, m.Port)
	if err != nil {
		return "", err
	}
	return JoinHostPort(host, port), nil
}

// Default is the configuration used when there is no file: one module,
// "default", with every default (EHLO..QUIT on port 25).
func Default() *Config {
	c, err := Parse([]byte("modules:\n  "+DefaultModuleName+": {}\n"), ".")
	if err != nil {
		panic(err) // a constant that always parses
	}
	return c
}

// LoadFile reads and decodes a config file, strictly: unknown keys are
// errors. Relative file names in it (ca_file, cert_file, key_file,
// password_file) are taken relative to the file's directory. An error
// reads "config FILE:LINE: KEY.PATH: what is wrong".
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, FileError(path, nil, err)
	}
	return c, nil
}

// Parse decodes config text; dir is where relative file names point. Every
// error is a *KeyError: the key's path, its line, what is wrong.
func Parse(data []byte, dir string) (*Config, error) {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(err)
	}
	w := newWalker()
	if err := w.walk(&doc, reflect.TypeFor[Config](), nil); err != nil {
		return nil, err
	}
	c := &Config{}
	if len(doc.Content) > 0 {
		if err := doc.Decode(c); err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) { // the walk decoded every section; not expected
				err = &KeyError{Err: errors.New("this file cannot be read as a configuration")}
			}
			w.setLine(err, 0)
			return nil, err
		}
	}
	// An empty document never reaches Config.UnmarshalYAML.
	if len(c.Modules) == 0 {
		return nil, errNoModules()
	}
	// Kept for the errors of compiling the modules (FileError); the static
	// targets' lines, thousands in a large file, are not needed then.
	maps.DeleteFunc(w.lines, func(path string, _ int) bool { return strings.HasPrefix(path, "targets[") })
	c.lines = w.lines
	for _, m := range c.Modules {
		m.TLSConfig.SetDirectory(dir)
		m.MTASTSTLSConfig.SetDirectory(dir)
		if m.Auth != nil {
			m.Auth.setDirectory(dir)
		}
		if d := m.DeliveryCheck; d != nil {
			d.TLSConfig.SetDirectory(dir)
			if d.PasswordFile != "" {
				d.PasswordFile = promconfig.JoinDir(dir, d.PasswordFile)
			}
		}
	}
	return c, nil
}

// String renders the config as YAML, secrets replaced by <secret>.
func (c *Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("<error rendering config: %s>", err)
	}
	return string(b)
}

// MaxTimeout is the longest module timeout (at least DefaultTimeout).
func (c *Config) MaxTimeout() time.Duration {
	d := DefaultTimeout
	for _, m := range c.Modules {
		d = max(d, time.Duration(m.Timeout))
	}
	return d
}

// sortedKeys returns a map's keys in order.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// MXSuccess says which exchangers (or addresses) must succeed for a target
// to succeed: the module's mx_success.
type MXSuccess string

// The MX success modes.
const (
	MXSuccessAll     MXSuccess = "all"     // every exchanger probed
	MXSuccessAny     MXSuccess = "any"     // at least one
	MXSuccessPrimary MXSuccess = "primary" // every exchanger with the lowest preference value
)
