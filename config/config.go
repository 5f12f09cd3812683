// Package config is what the user wrote in the configuration file, as plain
// data: the YAML types, their defaults, and every check of what they hold,
// done while decoding (in UnmarshalYAML), so that an error names the key and
// the module it is in. Nothing here dials, reads a file other than the config
// itself, or holds runtime state: a module is compiled into a probe plan by
// package probe, once per load. SafeConfig swaps configurations on reload.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

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
	MXSuccess          smtp.MXSuccess        `yaml:"mx_success,omitempty"`
	MXMaxHosts         int                   `yaml:"mx_max_hosts,omitempty"`
	ExpectReply        map[smtp.Phase]string `yaml:"expect_reply,omitempty"`
	DeliveryCheck      *DeliveryCheck        `yaml:"delivery_check,omitempty"`
	// Addresses is first (the first usable address) or all (every A and
	// AAAA of the target, or of each MX host, each probed).
	Addresses       string               `yaml:"addresses,omitempty"`
	DANE            bool                 `yaml:"dane,omitempty"`
	MTASTS          bool                 `yaml:"mta_sts,omitempty"`
	MTASTSTLSConfig promconfig.TLSConfig `yaml:"mta_sts_tls_config,omitempty"`
}

// AuthConfig holds AUTH credentials. The password is a Secret: it is never
// printed. Targets binds the credentials to the servers they belong to.
type AuthConfig struct {
	Username       string            `yaml:"username"`
	Password       promconfig.Secret `yaml:"password,omitempty"`
	PasswordFile   string            `yaml:"password_file,omitempty"`
	Mechanism      string            `yaml:"mechanism,omitempty"`
	AllowPlaintext bool              `yaml:"allow_plaintext,omitempty"`
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

// moduleKeys is Module without its UnmarshalYAML; yaml names it in errors
// about unknown keys.
type moduleKeys Module

// UnmarshalYAML sets the defaults, decodes the module and checks it.
func (m *Module) UnmarshalYAML(unmarshal func(any) error) error {
	*m = Module{Timeout: model.Duration(DefaultTimeout), TLS: smtp.TLSNone, IPProtocol: "ip4",
		MXSuccess: smtp.MXSuccessAll, MXMaxHosts: DefaultMXMaxHosts, Addresses: AddressesFirst}
	if err := unmarshal((*moduleKeys)(m)); err != nil {
		return err
	}
	if m.HeloName == "" {
		m.HeloName = DefaultHeloName()
	}
	if m.IPProtocolFallback == nil {
		t := true
		m.IPProtocolFallback = &t
	}
	if m.Port == 0 {
		m.Port = 25
		if m.TLS == smtp.TLSImplicit {
			m.Port = 465
		}
	}
	return m.validate()
}

func (m *Module) validate() error {
	if m.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %s", m.Timeout)
	}
	if err := smtp.CheckHeloName(m.HeloName); err != nil {
		return fmt.Errorf("helo_name: %w", err)
	}
	switch m.TLS {
	case smtp.TLSNone:
		if m.TLSConfig != (promconfig.TLSConfig{}) {
			return errors.New("tls_config is set but tls is none")
		}
	case smtp.TLSStartTLS, smtp.TLSImplicit:
	default:
		return fmt.Errorf("tls %q: want none, starttls or implicit", m.TLS)
	}
	switch m.IPProtocol {
	case "ip4", "ip6":
	default:
		return fmt.Errorf("ip_protocol %q: want ip4 or ip6", m.IPProtocol)
	}
	if m.Resolver != "" {
		if _, _, err := net.SplitHostPort(m.Resolver); err != nil {
			return fmt.Errorf("resolver %q: want host:port: %w", m.Resolver, err)
		}
	}
	switch m.MXSuccess {
	case smtp.MXSuccessAll, smtp.MXSuccessAny, smtp.MXSuccessPrimary:
	default:
		return fmt.Errorf("mx_success %q: want all, any or primary", m.MXSuccess)
	}
	if m.MXMaxHosts < 1 || m.MXMaxHosts > MaxMXHosts {
		return fmt.Errorf("mx_max_hosts %d: want 1 to %d", m.MXMaxHosts, MaxMXHosts)
	}
	if err := m.validateTransaction(); err != nil {
		return err
	}
	if err := m.validatePaths(); err != nil {
		return err
	}
	if m.Auth != nil {
		if m.TLS == smtp.TLSNone && !m.Auth.AllowPlaintext {
			return errors.New("auth without tls would send the password in clear: use tls starttls or implicit, or set auth.allow_plaintext")
		}
	}
	return m.validateExpectations()
}

func (m *Module) validateTransaction() error {
	if m.MailFrom != "" && m.MailFrom != "<>" {
		if err := smtp.CheckMailbox(m.MailFrom); err != nil {
			return fmt.Errorf("mail_from: %w", err)
		}
	}
	for i, rcpt := range m.RcptTo {
		if err := smtp.CheckMailbox(rcpt); err != nil {
			return fmt.Errorf("rcpt_to[%d]: %w", i, err)
		}
	}
	if len(m.RcptTo) > 0 && m.MailFrom == "" {
		return errors.New("rcpt_to needs mail_from")
	}
	if m.SendData && len(m.RcptTo) == 0 {
		return errors.New("send_data needs rcpt_to")
	}
	if m.DeliveryCheck != nil {
		switch {
		case !m.SendData:
			return errors.New("delivery_check needs send_data (and mail_from, rcpt_to): there is no message to wait for")
		case m.MXLookup:
			return errors.New("delivery_check cannot go with mx_lookup: every exchanger would send a message of its own")
		case len(m.ExpectReply) > 0:
			return errors.New("delivery_check cannot go with expect_reply: the dialog must deliver the message")
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
		return fmt.Errorf("addresses %q: want first or all", m.Addresses)
	}
	if m.DANE && m.TLS == smtp.TLSNone {
		return errors.New("dane needs tls starttls or implicit: DANE verifies the certificate of a TLS connection")
	}
	if m.MTASTS && !m.MXLookup {
		return errors.New("mta_sts needs mx_lookup: a policy is a domain's, checked against its MX hosts")
	}
	if m.MTASTSTLSConfig != (promconfig.TLSConfig{}) && !m.MTASTS {
		return errors.New("mta_sts_tls_config is set but mta_sts is not")
	}
	if m.DeliveryCheck != nil && m.Addresses == AddressesAll {
		return errors.New("delivery_check cannot go with addresses all: every address would send a message of its own")
	}
	return nil
}

// expectable lists the phases an expectation may name, in dialog order.
var expectable = []smtp.Phase{smtp.PhaseBanner, smtp.PhaseEHLO, smtp.PhaseStartTLS, smtp.PhaseAuth,
	smtp.PhaseMail, smtp.PhaseRcpt, smtp.PhaseData, smtp.PhaseMessage}

func (m *Module) validateExpectations() error {
	for _, phase := range sortedKeys(m.ExpectReply) {
		class, err := ParseReplyClass(m.ExpectReply[phase])
		if err != nil {
			return fmt.Errorf("expect_reply: %s: %w", phase, err)
		}
		if !slices.Contains(expectable, phase) {
			return fmt.Errorf("expect_reply: phase %q cannot carry an expectation (want one of %s)", phase, phaseList(expectable))
		}
		if class == 3 {
			// A 3xx reply opens an exchange (DATA's 354, AUTH's 334) that
			// the probe cannot end politely from there.
			return fmt.Errorf("expect_reply: %s: 3xx cannot end the dialog (it leaves DATA or AUTH open): expect 2xx, 4xx or 5xx", phase)
		}
		if !m.reaches(phase) {
			return fmt.Errorf("expect_reply: phase %q is never reached by this module", phase)
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
	return 0, fmt.Errorf("reply class %q: want 2xx, 4xx or 5xx", s)
}

type authKeys AuthConfig

// UnmarshalYAML decodes the auth section and checks it.
func (a *AuthConfig) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal((*authKeys)(a)); err != nil {
		return err
	}
	if a.Username == "" {
		return errors.New("auth: username is required")
	}
	if strings.ContainsFunc(a.Username, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return errors.New("auth: username contains a space or a control character")
	}
	switch {
	case a.Password != "" && a.PasswordFile != "":
		return errors.New("auth: at most one of password and password_file")
	case a.Password == "" && a.PasswordFile == "":
		return errors.New("auth: password or password_file is required")
	}
	switch strings.ToUpper(a.Mechanism) {
	case "", "PLAIN", "LOGIN", "CRAM-MD5":
	default:
		return fmt.Errorf("auth: mechanism %q: want PLAIN, LOGIN or CRAM-MD5", a.Mechanism)
	}
	for i, t := range a.Targets {
		if _, err := ParsePattern(t, true); err != nil {
			return fmt.Errorf("auth: targets[%d]: %w", i, err)
		}
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
		return errors.New("no modules defined")
	}
	c.Targets, c.ProbePolicy = raw.Targets, raw.ProbePolicy
	c.Modules = make(map[string]*Module, len(raw.Modules))
	for _, name := range sortedKeys(raw.Modules) {
		lm := raw.Modules[name]
		if lm == nil {
			return fmt.Errorf("module %q is empty (write {} for all defaults)", name)
		}
		m := &Module{}
		if err := lm.unmarshal(m); err != nil {
			return fmt.Errorf("module %q: %w", name, err)
		}
		c.Modules[name] = m
	}
	seen := make(map[[2]string]int, len(c.Targets))
	for i, t := range c.Targets {
		m, ok := c.Modules[t.Module]
		if !ok {
			return fmt.Errorf("targets[%d] %q: unknown module %q", i, t.Target, t.Module)
		}
		key, err := m.TargetKey(t.Target)
		if err != nil {
			return fmt.Errorf("targets[%d]: %w", i, err)
		}
		if j, dup := seen[[2]string{key, t.Module}]; dup {
			return fmt.Errorf("targets[%d]: %q with module %q is targets[%d] %q again", i, t.Target, t.Module, j, c.Targets[j].Target)
		}
		seen[[2]string{key, t.Module}] = i
	}
	return nil
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
// password_file) are taken relative to the file's directory.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes config text; dir is where relative file names point.
func Parse(data []byte, dir string) (*Config, error) {
	c := &Config{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, err
	}
	// An empty document never reaches Config.UnmarshalYAML.
	if len(c.Modules) == 0 {
		return nil, errors.New("no modules defined")
	}
	for _, m := range c.Modules {
		m.TLSConfig.SetDirectory(dir)
		m.MTASTSTLSConfig.SetDirectory(dir)
		if m.Auth != nil && m.Auth.PasswordFile != "" {
			m.Auth.PasswordFile = promconfig.JoinDir(dir, m.Auth.PasswordFile)
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
