// Package collector turns SMTP probes into Prometheus metrics: the config
// file, the /probe handler, the static-target collector behind /metrics and
// the reply counters that live across scrapes.
package collector

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Config is the whole configuration file.
type Config struct {
	Modules     map[string]*Module `yaml:"modules"`
	Targets     []StaticTarget     `yaml:"targets,omitempty"`
	ProbePolicy ProbePolicy        `yaml:"probe_policy,omitempty"`
}

// StaticTarget is a target probed on every scrape of /metrics.
type StaticTarget struct {
	Target string `yaml:"target"`
	Module string `yaml:"module,omitempty"`

	spec probeSpec // parsed at load
}

// Module says what a probe does. Its fields are the config file's keys.
type Module struct {
	Timeout            model.Duration    `yaml:"timeout,omitempty"`
	HeloName           string            `yaml:"helo_name,omitempty"`
	Port               uint16            `yaml:"port,omitempty"`
	TLS                string            `yaml:"tls,omitempty"`
	TLSConfig          config.TLSConfig  `yaml:"tls_config,omitempty"`
	Auth               *AuthConfig       `yaml:"auth,omitempty"`
	MailFrom           string            `yaml:"mail_from,omitempty"`
	RcptTo             []string          `yaml:"rcpt_to,omitempty"`
	SendData           bool              `yaml:"send_data,omitempty"`
	IPProtocol         string            `yaml:"ip_protocol,omitempty"`
	IPProtocolFallback *bool             `yaml:"ip_protocol_fallback,omitempty"`
	Resolver           string            `yaml:"resolver,omitempty"`
	MXLookup           bool              `yaml:"mx_lookup,omitempty"`
	MXSuccess          string            `yaml:"mx_success,omitempty"`
	MXMaxHosts         int               `yaml:"mx_max_hosts,omitempty"`
	ExpectReply        map[string]string `yaml:"expect_reply,omitempty"`

	// options is the module compiled for smtp.Probe, built once at load.
	options *smtp.Options
}

// AuthConfig holds AUTH credentials. The password is a Secret: it is never
// printed, and password_file is read at every probe, so rotating it needs no
// reload.
type AuthConfig struct {
	Username       string        `yaml:"username"`
	Password       config.Secret `yaml:"password,omitempty"`
	PasswordFile   string        `yaml:"password_file,omitempty"`
	Mechanism      string        `yaml:"mechanism,omitempty"`
	AllowPlaintext bool          `yaml:"allow_plaintext,omitempty"`
}

// Defaults.
const (
	DefaultModuleName = "default"
	DefaultTimeout    = 10 * time.Second
	DefaultMXMaxHosts = 5
)

// DefaultHeloName is the machine's host name, or "localhost".
func DefaultHeloName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// UnmarshalYAML sets the defaults, decodes the module and validates it.
func (m *Module) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Module
	*m = Module{Timeout: model.Duration(DefaultTimeout), TLS: string(smtp.TLSNone), IPProtocol: "ip4", MXSuccess: "all", MXMaxHosts: DefaultMXMaxHosts}
	if err := unmarshal((*plain)(m)); err != nil {
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
		if m.TLS == string(smtp.TLSImplicit) {
			m.Port = 465
		}
	}
	return m.validate()
}

func (m *Module) validate() error {
	if m.Timeout <= 0 {
		return fmt.Errorf("timeout must be positive, got %s", m.Timeout)
	}
	switch m.MXSuccess {
	case "all", "any", "primary":
	default:
		return fmt.Errorf("mx_success %q: want all, any or primary", m.MXSuccess)
	}
	if m.MXMaxHosts < 1 {
		return fmt.Errorf("mx_max_hosts must be at least 1, got %d", m.MXMaxHosts)
	}
	if m.Resolver != "" {
		if _, _, err := net.SplitHostPort(m.Resolver); err != nil {
			return fmt.Errorf("resolver %q: want host:port: %w", m.Resolver, err)
		}
	}
	for phase, class := range m.ExpectReply {
		if _, err := parseClass(class); err != nil {
			return fmt.Errorf("expect_reply: %s: %w", phase, err)
		}
	}
	if a := m.Auth; a != nil {
		if a.Password != "" && a.PasswordFile != "" {
			return errors.New("auth: at most one of password and password_file")
		}
		if a.Password == "" && a.PasswordFile == "" {
			return errors.New("auth: password or password_file is required")
		}
	}
	return nil
}

// parseClass reads "2xx" to "5xx".
func parseClass(s string) (int, error) {
	if len(s) == 3 && s[0] >= '2' && s[0] <= '5' && strings.EqualFold(s[1:], "xx") {
		return int(s[0] - '0'), nil
	}
	return 0, fmt.Errorf("reply class %q: want 2xx, 3xx, 4xx or 5xx", s)
}

// UnmarshalYAML decodes the auth section and checks it.
func (a *AuthConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain AuthConfig
	if err := unmarshal((*plain)(a)); err != nil {
		return err
	}
	if a.Username == "" {
		return errors.New("auth: username is required")
	}
	return nil
}

// UnmarshalYAML decodes a static target and parses its address.
func (t *StaticTarget) UnmarshalYAML(unmarshal func(any) error) error {
	type plain StaticTarget
	if err := unmarshal((*plain)(t)); err != nil {
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

// rawConfig is Config with its modules not decoded yet.
type rawConfig struct {
	Modules     map[string]*lazyModule `yaml:"modules"`
	Targets     []StaticTarget         `yaml:"targets"`
	ProbePolicy ProbePolicy            `yaml:"probe_policy"`
}

// UnmarshalYAML decodes the whole file, then checks what spans sections.
func (c *Config) UnmarshalYAML(unmarshal func(any) error) error {
	var raw rawConfig
	if err := unmarshal(&raw); err != nil {
		return err
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
	seen := make(map[[2]string]bool, len(c.Targets))
	for i := range c.Targets {
		t := &c.Targets[i]
		m, ok := c.Modules[t.Module]
		if !ok {
			return fmt.Errorf("targets[%d] %q: unknown module %q", i, t.Target, t.Module)
		}
		spec, err := newProbeSpec(m, t.Module, t.Target)
		if err != nil {
			return fmt.Errorf("targets[%d]: %w", i, err)
		}
		t.spec = spec
		key := [2]string{t.Target, t.Module}
		if seen[key] {
			return fmt.Errorf("targets[%d]: %q with module %q is listed twice", i, t.Target, t.Module)
		}
		seen[key] = true
	}
	return c.ProbePolicy.compile()
}

// DefaultConfig is the configuration used when there is no file: one
// module, "default", with every default (EHLO..QUIT on port 25).
func DefaultConfig() *Config {
	c, err := ParseConfig([]byte("modules:\n  "+DefaultModuleName+": {}\n"), ".")
	if err != nil {
		panic(err) // a constant that always parses
	}
	return c
}

// LoadConfig reads, decodes (strictly: unknown keys are errors) and compiles
// a config file. Relative file names in it (ca_file, cert_file, key_file,
// password_file) are taken relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := ParseConfig(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and compiles config text; dir is where relative file
// names point.
func ParseConfig(data []byte, dir string) (*Config, error) {
	c := &Config{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, friendlyYAMLError(err)
	}
	// An empty document never reaches Config.UnmarshalYAML.
	if len(c.Modules) == 0 {
		return nil, errors.New("no modules defined")
	}
	for _, name := range sortedKeys(c.Modules) {
		m := c.Modules[name]
		m.TLSConfig.SetDirectory(dir)
		if m.Auth != nil && m.Auth.PasswordFile != "" {
			m.Auth.PasswordFile = config.JoinDir(dir, m.Auth.PasswordFile)
		}
		if err := m.compile(); err != nil {
			return nil, fmt.Errorf("module %q: %w", name, err)
		}
	}
	return c, nil
}

// unknownField matches yaml's "field X not found in type collector.plain".
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// friendlyYAMLError says "unknown key" where yaml names Go types.
func friendlyYAMLError(err error) error {
	msg := unknownField.ReplaceAllString(err.Error(), `unknown key "$1"`)
	msg = strings.ReplaceAll(msg, "yaml: unmarshal errors:", "invalid config:")
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// compile builds the module's smtp.Options: the TLS config (CA and client
// certificate files are read now), the resolver, the expectations, and a
// check that password_file can be read.
func (m *Module) compile() error {
	o := &smtp.Options{
		HeloName:           m.HeloName,
		TLS:                smtp.TLSMode(m.TLS),
		MailFrom:           m.MailFrom,
		RcptTo:             m.RcptTo,
		SendData:           m.SendData,
		IPProtocol:         m.IPProtocol,
		IPProtocolFallback: *m.IPProtocolFallback,
	}
	if o.TLS != smtp.TLSNone {
		tc, err := config.NewTLSConfig(&m.TLSConfig)
		if err != nil {
			return fmt.Errorf("tls_config: %w", err)
		}
		o.TLSConfig = tc
	} else if m.TLSConfig != (config.TLSConfig{}) {
		return errors.New("tls_config is set but tls is none")
	}
	if m.Resolver != "" {
		o.Resolver = m.Resolver
	}
	if len(m.ExpectReply) > 0 {
		o.Expect = make(map[smtp.Phase]int, len(m.ExpectReply))
		for phase, class := range m.ExpectReply {
			n, _ := parseClass(class) // checked in validate
			o.Expect[smtp.Phase(phase)] = n
		}
	}
	if a := m.Auth; a != nil {
		if a.PasswordFile != "" {
			if _, err := readPasswordFile(a.PasswordFile); err != nil {
				return fmt.Errorf("auth: %w", err)
			}
		}
		o.Auth = &smtp.Auth{Username: a.Username, Mechanism: a.Mechanism, AllowPlaintext: a.AllowPlaintext, Password: a.password}
	}
	if err := o.Validate(); err != nil {
		return err
	}
	m.options = o
	return nil
}

// password returns the password, reading password_file afresh.
func (a *AuthConfig) password() (string, error) {
	if a.PasswordFile != "" {
		return readPasswordFile(a.PasswordFile)
	}
	return string(a.Password), nil
}

// readPasswordFile reads a password file; one trailing newline is dropped.
// Errors name the file, never its content.
func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("password_file %s is empty", path)
	}
	return s, nil
}

// Options returns the module compiled for smtp.Probe. The result is shared:
// callers copy it before changing a field.
func (m *Module) Options() *smtp.Options { return m.options }

// String renders the config as YAML, secrets replaced by <secret>.
func (c *Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("<error rendering config: %s>", err)
	}
	return string(b)
}
