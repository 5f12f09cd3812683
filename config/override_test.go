package config

import (
	"reflect"
	"slices"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestWithOverride: the probe command's overrides give a module checked as
// the file's are, and leave the file's module as it was.
func TestWithOverride(t *testing.T) {
	c, err := Parse([]byte("modules:\n"+
		"  plain: {helo_name: probe.test}\n"+
		"  sub: {port: 587, tls: starttls, tls_config: {server_name: mx.example.org}, mail_from: a@example.org, rcpt_to: [b@example.org]}\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	implicit, none, starttls := smtp.TLSImplicit, smtp.TLSNone, smtp.TLSStartTLS
	port, yes := uint16(2525), true
	helo, ip6, bad := "over.test", "ip6", "bad name"
	tests := []struct {
		name, module string
		o            Override
		check        func(*Module) bool
		wantErr      string
	}{
		{"nothing", "plain", Override{}, func(m *Module) bool { return reflect.DeepEqual(m, c.Modules["plain"]) }, ""},
		{"tls implicit takes port 465 where the module left port out", "plain", Override{TLS: &implicit},
			func(m *Module) bool { return m.TLS == implicit && m.Port == 465 }, ""},
		{"an explicit port stays", "sub", Override{TLS: &implicit}, func(m *Module) bool { return m.Port == 587 }, ""},
		{"--port wins over the tls default", "plain", Override{TLS: &implicit, Port: &port}, func(m *Module) bool { return m.Port == 2525 }, ""},
		{"tls none drops tls_config", "sub", Override{TLS: &none},
			func(m *Module) bool { return m.TLSConfig.ServerName == "" && m.TLS == none }, ""},
		{"insecure_skip_verify keeps the rest of tls_config", "sub", Override{InsecureSkipVerify: &yes},
			func(m *Module) bool {
				return m.TLSConfig.InsecureSkipVerify && m.TLSConfig.ServerName == "mx.example.org"
			}, ""},
		{"rcpt_to replaced", "sub", Override{RcptTo: []string{"c@example.org", "d@example.org"}},
			func(m *Module) bool { return slices.Equal(m.RcptTo, []string{"c@example.org", "d@example.org"}) }, ""},
		{"the rest", "plain", Override{HeloName: &helo, IPProtocol: &ip6, MXLookup: &yes, SendData: new(bool)},
			func(m *Module) bool { return m.HeloName == helo && m.IPProtocol == "ip6" && m.MXLookup && !m.SendData }, ""},
		{"checked like the file", "plain", Override{HeloName: &bad}, nil, `helo_name: "bad name" is not a domain: ' ' is not a letter, digit or hyphen`},
		{"checked together", "sub", Override{TLS: &starttls, MailFrom: new(string)}, nil, "rcpt_to: needs mail_from: RCPT TO comes after MAIL FROM"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := *c.Modules[tc.module]
			m, err := c.Modules[tc.module].WithOverride(tc.o)
			if errString(err) != tc.wantErr {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if tc.check != nil && !tc.check(m) {
				t.Errorf("module %+v", m)
			}
			if after := c.Modules[tc.module]; after.Port != before.Port || after.TLS != before.TLS || after.TLSConfig != before.TLSConfig ||
				!slices.Equal(after.RcptTo, before.RcptTo) || after.HeloName != before.HeloName {
				t.Errorf("the file's module changed: %+v", after)
			}
		})
	}
}
