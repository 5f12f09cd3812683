package smtp

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHeloName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"probe.example.org", true},
		{"localhost", true},
		{"a-b.c9", true},
		{"[192.0.2.1]", true},
		{"[IPv6:2001:db8::1]", true},
		{"[ipv6:::1]", true},
		{"", false},
		{"probe.test\r\nMAIL FROM:<x>", false},
		{"probe.test.", false},
		{".probe.test", false},
		{"pro be.test", false},
		{"-probe.test", false},
		{"probe-.test", false},
		{"under_score.test", false},
		{"bücher.test", false},
		{"probe\u0085.test", false}, // C1 control (NEL) in UTF-8
		{"probe\x1b.test", false},
		{strings.Repeat("a", 64) + ".test", false},
		{strings.Repeat("a.", 128) + "a", false},
		{"[192.0.2.1", false},
		{"[2001:db8::1]", false},
		{"[IPv6:192.0.2.1]", false},
		{"[IPv6:fe80::1%eth0]", false},
		{"[300.0.0.1]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHeloName(tc.name)
			if (err == nil) != tc.ok {
				t.Errorf("CheckHeloName(%q) = %v, want ok %t", tc.name, err, tc.ok)
			}
		})
	}
}

func TestCheckMailbox(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"probe@example.org", true},
		{"first.last+tag@sub.example.org", true},
		{"postmaster", true},
		{"Postmaster", true},
		{"root@[192.0.2.1]", true},
		{"", false},
		{"<>", false},
		{"nobody", false},
		{"@example.org", false},
		{"probe@", false},
		{"a@b\nRCPT TO:<c>", false},
		{"x@y\x00", false},
		{"a b@example.org", false},
		{"a<b@example.org", false},
		{"probe@exa mple.org", false},
		{"probe@example..org", false},
		{"pröbe@example.org", false},
		{strings.Repeat("a", 65) + "@example.org", false},
		{"a@" + strings.Repeat("b.", 130) + "org", false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := CheckMailbox(tc.addr)
			if (err == nil) != tc.ok {
				t.Errorf("CheckMailbox(%q) = %v, want ok %t", tc.addr, err, tc.ok)
			}
		})
	}
}

// TestValidateNamesGoFields: every refusal is a *FieldError naming the Go
// field, and no YAML key appears in the text.
func TestValidateNamesGoFields(t *testing.T) {
	pw := func() (string, error) { return "p", nil }
	for _, tc := range []struct {
		name  string
		opts  Options
		field string
	}{
		{"helo with CRLF", Options{HeloName: "probe.test\r\nMAIL FROM:<x>"}, "HeloName"},
		{"empty helo", Options{}, "HeloName"},
		{"non-ASCII helo", Options{HeloName: "prøbe.test"}, "HeloName"},
		{"bad tls", Options{HeloName: "p.test", TLS: "sometimes"}, "TLS"},
		{"bad ip protocol", Options{HeloName: "p.test", IPProtocol: "ip5"}, "IPProtocol"},
		{"bad resolver", Options{HeloName: "p.test", Resolver: "127.0.0.1"}, "Resolver"},
		{"resolver port 0", Options{HeloName: "p.test", Resolver: "127.0.0.1:0"}, "Resolver"},
		{"mail from with LF", Options{HeloName: "p.test", MailFrom: "a@b\nRCPT TO:<c>"}, "MailFrom"},
		{"second rcpt bad", Options{HeloName: "p.test", MailFrom: "a@b.test", RcptTo: []string{"c@d.test", "x@y\x00"}}, "RcptTo[1]"},
		{"empty rcpt", Options{HeloName: "p.test", MailFrom: "a@b.test", RcptTo: []string{""}}, "RcptTo[0]"},
		{"rcpt without mail", Options{HeloName: "p.test", RcptTo: []string{"x@y.test"}}, "RcptTo"},
		{"data without rcpt", Options{HeloName: "p.test", MailFrom: "a@b.test", SendData: true}, "SendData"},
		{"auth without user", Options{HeloName: "p.test", TLS: TLSImplicit, Auth: &Auth{Password: pw}}, "Auth.Username"},
		{"auth without password", Options{HeloName: "p.test", TLS: TLSImplicit, Auth: &Auth{Username: "u"}}, "Auth.Password"},
		{"auth user with CR", Options{HeloName: "p.test", TLS: TLSImplicit, Auth: &Auth{Username: "u\r", Password: pw}}, "Auth.Username"},
		{"auth mechanism", Options{HeloName: "p.test", TLS: TLSImplicit, Auth: &Auth{Username: "u", Password: pw, Mechanism: "GSSAPI"}}, "Auth.Mechanism"},
		{"auth XOAUTH2 with a password", Options{HeloName: "p.test", TLS: TLSImplicit, Auth: &Auth{Username: "u", Password: pw, Mechanism: "XOAUTH2"}}, "Auth.Token"},
		{"auth in clear", Options{HeloName: "p.test", Auth: &Auth{Username: "u", Password: pw}}, "Auth"},
		{"expect on quit", Options{HeloName: "p.test", Expect: map[Phase]int{PhaseQuit: 2}}, "Expect[quit]"},
		{"expect class 6", Options{HeloName: "p.test", Expect: map[Phase]int{PhaseEHLO: 6}}, "Expect[ehlo]"},
		{"expect unreached", Options{HeloName: "p.test", Expect: map[Phase]int{PhaseRcpt: 5}}, "Expect[rcpt]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			var ferr *FieldError
			if !errors.As(err, &ferr) {
				t.Fatalf("Validate = %v, want a *FieldError", err)
			}
			if ferr.Field != tc.field || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("Validate = %q (field %q), want field %q", err, ferr.Field, tc.field)
			}
			for _, key := range []string{"helo_name", "mail_from", "rcpt_to", "send_data", "allow_plaintext", "expect_reply", "ip_protocol"} {
				if strings.Contains(err.Error(), key) {
					t.Errorf("Validate = %q names the YAML key %s", err, key)
				}
			}
		})
	}
	ok := Options{HeloName: "[192.0.2.1]", TLS: TLSStartTLS, MailFrom: "<>", RcptTo: []string{"postmaster"}, SendData: true,
		Resolver: "[::1]:53", Auth: &Auth{Username: "u", Password: pw, Mechanism: "plain"}, Expect: map[Phase]int{PhaseMessage: 2}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(valid options) = %v", err)
	}
}
