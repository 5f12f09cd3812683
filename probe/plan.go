// Package probe turns the configuration into what a probe runs, once per
// load, and runs it: a Plan per module (the smtp.Options built and validated
// once, TLS files read once), the static targets parsed once, the probe
// policy compiled, and Run, which takes a parsed Target along every path a
// sender takes to an Outcome. The HTTP handlers, the /metrics static targets
// and the probe command all go through this one form.
//
// It is the only package that knows how the protocols combine: smtp for
// each dialog with one server address, dnssec-aware lookups through dane
// (TLSA records and the certificate verdict, hooked into the dialog as its
// smtp.TLSCheck), mtasts and tlsrpt for the domain's policies, and delivery
// for the mailbox. Those packages know nothing of each other, of this
// package, of the configuration or of Prometheus; this one knows nothing of
// HTTP or the exposition format.
package probe

import (
	"fmt"
	"maps"
	"slices"
	"time"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/delivery"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Plan is one module, compiled: how its targets are read and what the
// dialog does. It is read-only and shared by concurrent probes.
type Plan struct {
	Name   string
	Module *config.Module // as written, for display
	// ModuleYAML is Module rendered once (secrets as <secret>), for the
	// debug output.
	ModuleYAML []byte
	Timeout    time.Duration
	Port       uint16 // the default port of a target
	// MX, when not nil, makes a target a domain whose exchangers are probed.
	MX *MXPlan
	// AllAddresses probes every address of the target (or of each MX host);
	// Success then decides over all of them.
	AllAddresses bool
	Success      config.MXSuccess
	// Options is what each SMTP dialog runs, validated once at load.
	Options *smtp.Options
	// DANE looks up each host's TLSA records (RFC 7672) after its
	// resolution; where they apply, they judge the certificate.
	DANE bool
	// MTASTS, with mx_lookup: fetch the domain's MTA-STS policy (RFC 8461)
	// while the MX records are looked up, and judge every exchanger by it.
	MTASTS *mtasts.Options
	// TLSRPT, with mx_lookup: look up the domain's TLS-RPT record.
	TLSRPT bool
	// Delivery, when not nil, waits for the accepted message in a mailbox.
	Delivery *delivery.Check
	// deliveryTargets are where /probe may run this module's delivery
	// check, besides its static targets; nil without delivery_check.
	deliveryTargets []config.Pattern
	// authTargets are where /probe may send this module's credentials,
	// besides its static targets; nil without auth.
	authTargets []config.Pattern
}

// MXPlan is how an mx_lookup module judges a domain.
type MXPlan struct {
	Success  config.MXSuccess
	MaxHosts int
}

// Set is a whole configuration, compiled.
type Set struct {
	Config *config.Config
	Plans  map[string]*Plan
	// Static are the targets probed on every scrape of /metrics, in config
	// order.
	Static []Target
	Policy *Policy
	// Warnings are what the configuration holds that is valid but unwise
	// (a dane or mta_sts module trusting a resolver that is not on a
	// loopback address): a log line each at every load, printed by
	// --config.check.
	Warnings []string
	// staticKeys holds "module\x00key" of every static target.
	staticKeys map[string]bool
}

// Build compiles c: every module into a Plan (reading TLS files and
// checking password files now), every static target into a Target.
func Build(c *config.Config) (*Set, error) {
	s := &Set{Config: c, Plans: make(map[string]*Plan, len(c.Modules)), staticKeys: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(c.Modules)) {
		p, err := newPlan(name, c.Modules[name])
		if err != nil {
			return nil, config.AtKey(err, "modules", name)
		}
		s.Plans[name] = p
	}
	for i, st := range c.Targets {
		t, err := s.Plans[st.Module].ParseTarget(st.Target)
		if err != nil { // checked while decoding; kept for safety
			return nil, config.AtKey(err, "targets", config.Index(i), "target")
		}
		t.Static = true
		s.Static = append(s.Static, t)
		s.staticKeys[st.Module+"\x00"+t.Key] = true
	}
	policy, err := newPolicy(&c.ProbePolicy)
	if err != nil {
		return nil, err
	}
	s.Policy = policy
	s.Warnings = resolverWarnings(c)
	return s, nil
}

// IsStatic reports whether t's module lists it among the static targets.
func (s *Set) IsStatic(t Target) bool { return s.staticKeys[t.Plan.Name+"\x00"+t.Key] }

// MayAuthenticate reports whether the module's credentials may be sent to
// t: always without auth; else when t is a static target of the module or
// matches the module's auth.targets.
func (s *Set) MayAuthenticate(t Target) bool {
	return t.Plan.Options.Auth == nil || s.IsStatic(t) || matchAny(t.Plan.authTargets, t)
}

// MayDeliver reports whether /probe may run the module's delivery check
// for t, which logs in to the mailbox and leaves a message there: always
// without delivery_check; else when t is a static target of the module or
// matches delivery_check.targets.
func (s *Set) MayDeliver(t Target) bool {
	return t.Plan.Delivery == nil || s.IsStatic(t) || matchAny(t.Plan.deliveryTargets, t)
}

// matchAny reports whether t matches one of pats, by name or address.
func matchAny(pats []config.Pattern, t Target) bool {
	for _, pat := range pats {
		if pat.MatchName(t.Host, t.Port) || (t.Addr.IsValid() && pat.MatchAddr(t.Addr, t.Port)) {
			return true
		}
	}
	return false
}

func newPlan(name string, m *config.Module) (*Plan, error) {
	o := &smtp.Options{
		HeloName:           m.HeloName,
		TLS:                m.TLS,
		MailFrom:           m.MailFrom,
		RcptTo:             m.RcptTo,
		SendData:           m.SendData,
		IPProtocol:         m.IPProtocol,
		IPProtocolFallback: *m.IPProtocolFallback,
		Resolver:           m.Resolver,
	}
	p := &Plan{Name: name, Module: m, Timeout: time.Duration(m.Timeout), Port: m.Port, Options: o,
		AllAddresses: m.Addresses == config.AddressesAll, Success: m.MXSuccess,
		DANE: m.DANE, TLSRPT: m.MXLookup && (m.MTASTS || m.DANE)}
	if m.MTASTS {
		mo := &mtasts.Options{Resolver: m.Resolver}
		if m.MTASTSTLSConfig != (promconfig.TLSConfig{}) {
			tc, err := newTLSConfig(m.MTASTSTLSConfig)
			if err != nil {
				return nil, config.AtKey(err, "mta_sts_tls_config")
			}
			mo.TLSConfig = tc
		}
		p.MTASTS = mo
	}
	if m.TLS != smtp.TLSNone {
		tc, err := newTLSConfig(m.TLSConfig)
		if err != nil {
			return nil, config.AtKey(err, "tls_config")
		}
		o.TLSConfig = tc
	}
	if len(m.ExpectReply) > 0 {
		o.Expect = make(map[smtp.Phase]int, len(m.ExpectReply))
		for phase, class := range m.ExpectReply {
			n, err := config.ParseReplyClass(class)
			if err != nil {
				return nil, config.AtKey(err, "expect_reply", string(phase))
			}
			o.Expect[phase] = n
		}
	}
	if a := m.Auth; a != nil {
		o.Auth = &smtp.Auth{Username: a.Username, Mechanism: a.Mechanism, AllowPlaintext: a.AllowPlaintext}
		token, err := tokenFunc(a)
		if err != nil {
			return nil, config.AtKey(err, "auth")
		}
		if o.Auth.Token = token; token == nil {
			if o.Auth.Password, err = passwordFunc(a.Password, a.PasswordFile); err != nil {
				return nil, config.AtKey(err, "auth")
			}
		}
		if p.authTargets, err = parsePatterns(a.Targets, "auth", "targets"); err != nil {
			return nil, err
		}
	}
	if m.MXLookup {
		p.MX = &MXPlan{Success: m.MXSuccess, MaxHosts: m.MXMaxHosts}
	}
	if d := m.DeliveryCheck; d != nil {
		dc, err := newDeliveryCheck(d)
		if err != nil {
			return nil, config.AtKey(err, "delivery_check")
		}
		p.Delivery = dc
		if p.deliveryTargets, err = parsePatterns(d.Targets, "delivery_check", "targets"); err != nil {
			return nil, err
		}
		// The message says when this probe stops waiting for it, so that
		// another probe's cleanup of the mailbox spares it until then.
		o.MarkDeadline = true
	}
	y, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("rendering the module: %w", err)
	}
	p.ModuleYAML = y
	// The config layer checked every key; this catches what only the
	// engine knows, once, at load.
	if err := o.Validate(); err != nil {
		return nil, config.AtKey(err)
	}
	return p, nil
}

// passwordFunc returns the password, inline or read from file at every call
// (rotation needs no reload); a file is checked once now.
func passwordFunc(inline promconfig.Secret, file string) (func() (string, error), error) {
	return secretFunc("password_file", inline, file)
}

// secretFunc is passwordFunc for the secret of the config's fileKey.
func secretFunc(fileKey string, inline promconfig.Secret, file string) (func() (string, error), error) {
	if file == "" {
		return func() (string, error) { return string(inline), nil }, nil
	}
	if _, err := readPasswordFile(file); err != nil {
		return nil, config.AtKey(err, fileKey)
	}
	return func() (string, error) {
		s, err := readPasswordFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileKey, err)
		}
		return s, nil
	}, nil
}

func newDeliveryCheck(d *config.DeliveryCheck) (*delivery.Check, error) {
	password, err := passwordFunc(d.Password, d.PasswordFile)
	if err != nil {
		return nil, err
	}
	dc := &delivery.Check{Addr: d.IMAP, TLS: delivery.TLSMode(d.TLS), Username: d.Username, Password: password,
		Mailbox: d.Mailbox, Timeout: time.Duration(d.Timeout)}
	if d.TLS != smtp.TLSNone {
		if dc.TLSConfig, err = newTLSConfig(d.TLSConfig); err != nil {
			return nil, config.AtKey(err, "tls_config")
		}
	}
	return dc, dc.Validate()
}

// parsePatterns compiles a module's list of targets (auth.targets,
// delivery_check.targets); an error names the list by keys.
func parsePatterns(list []string, keys ...string) ([]config.Pattern, error) {
	pats := make([]config.Pattern, 0, len(list))
	for _, t := range list {
		pat, err := config.ParsePattern(t, true)
		if err != nil {
			return nil, config.AtKey(err, keys...)
		}
		pats = append(pats, pat)
	}
	return pats, nil
}
