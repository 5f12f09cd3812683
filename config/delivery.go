package config

import (
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
	if err := checkTLSMode(d.TLS); err != nil {
		return AtKey(err, "tls")
	}
	if d.TLS == smtp.TLSNone {
		if d.TLSConfig != (promconfig.TLSConfig{}) {
			return at("tls_config", "is set, but tls is none: set tls: starttls or implicit, or leave tls_config out")
		}
		if !d.AllowPlaintext {
			return at("tls", "none would send the IMAP password in clear: write starttls or implicit, or set delivery_check.allow_plaintext: true")
		}
	}
	if d.IMAP == "" {
		return keyErrorf(nil, "needs imap: the IMAP server, host or host:port")
	}
	port := uint16(143)
	if d.TLS == smtp.TLSImplicit {
		port = 993
	}
	host, p, err := ParseTarget(d.IMAP, port)
	if err != nil {
		return at("imap", "%w", err)
	}
	d.IMAP = net.JoinHostPort(host, strconv.Itoa(int(p)))
	if err := checkCredentials(d.Username, d.Password, d.PasswordFile); err != nil {
		return err
	}
	if d.Timeout <= 0 {
		return at("timeout", "%s is not a positive duration: write one such as 60s", d.Timeout)
	}
	if d.Mailbox == "" {
		return at("mailbox", "is empty: write the mailbox to search, such as INBOX")
	}
	for i, t := range d.Targets {
		if _, err := ParsePattern(t, true); err != nil {
			return keyErrorf([]string{"targets", Index(i)}, "%w", err)
		}
	}
	return nil
}
