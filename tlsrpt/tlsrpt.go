// Package tlsrpt reads a domain's SMTP TLS Reporting record (RFC 8460):
// the TXT record at _smtp._tls.DOMAIN, its version, its rua= report
// addresses (mailto: or https:) and its extension fields, parsed by a pure
// function that is tested without a network. It never sends a report.
package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/smtp-exporter/smtp_exporter/dnssec"
)

// Record is a parsed _smtp._tls TXT record (RFC 8460 3).
type Record struct {
	// RUA are the report addresses: mailto: or https: URIs.
	RUA []string
}

// ParseRecord parses "v=TLSRPTv1; rua=mailto:tlsrpt@example.org":
// the version first, fields separated by ";" with optional spaces, at
// least one rua of one or more comma-separated mailto: or https: URIs,
// other well-formed fields ignored. RFC 8460 3's grammar,
// "tlsrpt-version 1*(field-delim tlsrpt-field)" with "tlsrpt-field =
// tlsrpt-rua / tlsrpt-extension", lets rua appear more than once and says
// nothing of repeats: every rua field's addresses are taken, in order.
func ParseRecord(txt string) (*Record, error) {
	fields := strings.Split(txt, ";")
	if n := len(fields); n > 1 && strings.Trim(fields[n-1], " \t") == "" {
		fields = fields[:n-1]
	}
	var rec Record
	for i, f := range fields {
		f = strings.Trim(f, " \t")
		key, value, ok := strings.Cut(f, "=")
		if !ok || !isFieldName(key) || value == "" {
			return nil, fmt.Errorf("tls-rpt record: field %q is not key=value", f)
		}
		switch {
		case i == 0:
			if key != "v" || value != "TLSRPTv1" {
				return nil, errors.New("tls-rpt record: does not begin with v=TLSRPTv1")
			}
		case key == "rua":
			for _, u := range strings.Split(value, ",") {
				u = strings.Trim(u, " \t")
				if err := checkRUA(u); err != nil {
					return nil, fmt.Errorf("tls-rpt record: rua %q: %w", u, err)
				}
				rec.RUA = append(rec.RUA, u)
			}
		default:
			for _, c := range []byte(value) {
				if c < 0x21 || c > 0x7e || c == ';' {
					return nil, fmt.Errorf("tls-rpt record: field %q has a bad value", key)
				}
			}
		}
	}
	if len(rec.RUA) == 0 {
		return nil, errors.New("tls-rpt record: no rua")
	}
	return &rec, nil
}

// checkRUA accepts a mailto: URI with an address, or an https: URI with a
// host.
func checkRUA(s string) error {
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return errors.New("a space or control character")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		addr := u.Opaque
		if i := strings.IndexByte(addr, '!'); i >= 0 { // RFC 8460 3: "!" size limits are not part of the address
			addr = addr[:i]
		}
		if at := strings.LastIndexByte(addr, '@'); at <= 0 || at == len(addr)-1 {
			return errors.New("mailto: without an address")
		}
	case "https":
		if u.Host == "" {
			return errors.New("https: without a host")
		}
	default:
		return fmt.Errorf("scheme %q is not mailto or https", u.Scheme)
	}
	return nil
}

// Result is the outcome of a TLS-RPT lookup.
type Result struct {
	// Records are the TXT records at _smtp._tls.DOMAIN beginning with
	// "v=TLSRPTv1".
	Records []string
	// Record is the one valid record; nil when there is not exactly one
	// record beginning with "v=TLSRPTv1", or it is invalid. Its presence is
	// probe_smtp_tls_rpt_record.
	Record *Record
	// Err says why Record is nil despite Records.
	Err error
}

// Lookup asks resolver for the TXT records at _smtp._tls.DOMAIN and
// parses the one beginning with "v=TLSRPTv1" (RFC 8460 3: not exactly one
// means the domain does not implement TLS-RPT). The error is for a lookup
// that failed; an absent or invalid record is not an error, see
// Result.
func Lookup(ctx context.Context, resolver, domain string) (*Result, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	txts, err := dnssec.LookupTXT(ctx, resolver, "_smtp._tls."+domain)
	if err != nil {
		return &Result{}, fmt.Errorf("tls-rpt record: %w", err)
	}
	res := &Result{}
	for _, t := range txts {
		if strings.HasPrefix(t, "v=TLSRPTv1;") || t == "v=TLSRPTv1" {
			res.Records = append(res.Records, t)
		}
	}
	switch len(res.Records) {
	case 0:
	case 1:
		res.Record, res.Err = ParseRecord(res.Records[0])
	default:
		res.Err = fmt.Errorf("tls-rpt record: %d records begin with v=TLSRPTv1, not one", len(res.Records))
	}
	return res, nil
}

// isFieldName reports whether s is a field name: a letter or digit, then
// letters, digits, "_", "-", "." (RFC 8460 3, tlsrpt-ext-name, 32 at most).
func isFieldName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}
