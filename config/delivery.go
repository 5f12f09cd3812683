package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// DeliveryCheck is a module's delivery_check: after the message is
// accepted, wait until it is in a mailbox, over IMAP.
type DeliveryCheck struct {
	// IMAP is the server, host or host:port (993 with tls: implicit, else 143).
	IMAP           string               `yaml:"imap"`
	TLS            smtp.TLSMode         `yaml:"tls,omitempty"`
	TLSConfig      promconfig.TLSConfig `yaml:"tls_config,omitempty"`
	Username       string               `yaml:"username"`
	Password       promconfig.Secret    `yaml:"password,omitempty"`
	PasswordFile   string               `yaml:"password_file,omitempty"`
	AllowPlaintext bool                 `yaml:"allow_plaintext,omitempty"`
	Mailbox        string               `yaml:"mailbox,omitempty"`
	// Timeout bounds the wait from the acceptance; the module's timeout
	// bounds the whole probe, whichever ends first.
	Timeout model.Duration `yaml:"timeout,omitempty"`
	// Targets lists, besides the static targets of the module, which
	// targets /probe may send the probe's message to (host, host:port or
	// *.example.org): each such probe logs in to the mailbox and leaves a
	// message, so an unbounded caller could lock the account out.
	Targets []string `yaml:"targets,omitempty"`
}

// DefaultDeliveryTimeout is delivery_check's default timeout.
const DefaultDeliveryTimeout = 60 * time.Second

type deliveryCheckKeys DeliveryCheck

// UnmarshalYAML sets the defaults, decodes delivery_check and checks it.
func (d *DeliveryCheck) UnmarshalYAML(unmarshal func(any) error) error {
	*d = DeliveryCheck{TLS: smtp.TLSImplicit, Mailbox: "INBOX", Timeout: model.Duration(DefaultDeliveryTimeout)}
	if err := unmarshal((*deliveryCheckKeys)(d)); err != nil {
		return err
	}
	switch d.TLS {
	case smtp.TLSNone:
		if d.TLSConfig != (promconfig.TLSConfig{}) {
			return errors.New("delivery_check: tls_config is set but tls is none")
		}
		if !d.AllowPlaintext {
			return errors.New("delivery_check: tls none would send the IMAP password in clear: use starttls or implicit, or set delivery_check.allow_plaintext")
		}
	case smtp.TLSStartTLS, smtp.TLSImplicit:
	default:
		return fmt.Errorf("delivery_check: tls %q: want none, starttls or implicit", d.TLS)
	}
	if d.IMAP == "" {
		return errors.New("delivery_check: imap is required (host or host:port)")
	}
	port := uint16(143)
	if d.TLS == smtp.TLSImplicit {
		port = 993
	}
	host, p, err := ParseTarget(d.IMAP, port)
	if err != nil {
		return fmt.Errorf("delivery_check: imap: %w", err)
	}
	d.IMAP = net.JoinHostPort(host, strconv.Itoa(int(p)))
	if d.Username == "" {
		return errors.New("delivery_check: username is required")
	}
	switch {
	case d.Password != "" && d.PasswordFile != "":
		return errors.New("delivery_check: at most one of password and password_file")
	case d.Password == "" && d.PasswordFile == "":
		return errors.New("delivery_check: password or password_file is required")
	}
	if d.Timeout <= 0 {
		return fmt.Errorf("delivery_check: timeout must be positive, got %s", d.Timeout)
	}
	if d.Mailbox == "" {
		return errors.New("delivery_check: mailbox is empty")
	}
	for i, t := range d.Targets {
		if _, err := ParsePattern(t, true); err != nil {
			return fmt.Errorf("delivery_check: targets[%d]: %w", i, err)
		}
	}
	return nil
}
