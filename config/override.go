package config

import (
	"maps"
	"slices"
	"strconv"

	promconfig "github.com/prometheus/common/config"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Override is what the probe command's flags change in a module. A nil
// field (an empty RcptTo) leaves the module's value.
type Override struct {
	Port               *uint16
	TLS                *smtp.TLSMode
	HeloName           *string
	MailFrom           *string
	RcptTo             []string
	SendData           *bool
	InsecureSkipVerify *bool
	IPProtocol         *string
	MXLookup           *bool
}

// WithOverride returns a copy of m with o applied, checked as a module of
// the config file is: an error is a *KeyError at the module's key that is
// wrong (helo_name, rcpt_to, ...). tls: none drops the module's
// tls_config; a module that leaves port out gets the new tls's default
// port (465 for implicit).
func (m *Module) WithOverride(o Override) (*Module, error) {
	c := *m
	c.RcptTo = slices.Clone(m.RcptTo)
	c.ExpectReply = maps.Clone(m.ExpectReply)
	if o.TLS != nil {
		c.TLS = *o.TLS
		if c.TLS == smtp.TLSNone {
			c.TLSConfig = promconfig.TLSConfig{}
		}
		if c.portDefaulted {
			c.Port = defaultPort(c.TLS)
		}
	}
	if o.Port != nil {
		c.Port, c.portDefaulted = *o.Port, false
	}
	if o.HeloName != nil {
		c.HeloName = *o.HeloName
	}
	if o.MailFrom != nil {
		c.MailFrom = *o.MailFrom
	}
	if o.RcptTo != nil {
		c.RcptTo = slices.Clone(o.RcptTo)
	}
	if o.SendData != nil {
		c.SendData = *o.SendData
	}
	if o.InsecureSkipVerify != nil {
		c.TLSConfig.InsecureSkipVerify = *o.InsecureSkipVerify
	}
	if o.IPProtocol != nil {
		c.IPProtocol = *o.IPProtocol
	}
	if o.MXLookup != nil {
		c.MXLookup = *o.MXLookup
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParsePort reads a port number as the config file's port is read: 1 to
// 65535.
func ParsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	switch {
	case err != nil:
		return 0, at("port", "%q is not a port number from 1 to 65535", s)
	case n == 0:
		return 0, at("port", "0 is not a port number: write one from 1 to 65535")
	}
	return uint16(n), nil
}
