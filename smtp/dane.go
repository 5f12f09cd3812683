package smtp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ReasonDANE fails a probe whose host has authenticated, usable TLSA records
// (RFC 7672) when the certificate matches none of them, or when the server
// does not offer STARTTLS although DANE requires it.
const ReasonDANE Reason = "dane"

// TLSA certificate usages, selectors and matching types (RFC 6698, 7218).
const (
	TLSAUsagePKIXTA = 0 // PKIX-TA: unusable for SMTP (RFC 7672 3.1.3)
	TLSAUsagePKIXEE = 1 // PKIX-EE: unusable for SMTP
	TLSAUsageDANETA = 2 // DANE-TA: a trust anchor in the server's chain
	TLSAUsageDANEEE = 3 // DANE-EE: the server's own certificate or key

	TLSASelectorCert = 0 // the whole certificate
	TLSASelectorSPKI = 1 // its SubjectPublicKeyInfo

	TLSAMatchFull   = 0 // the data itself
	TLSAMatchSHA256 = 1
	TLSAMatchSHA512 = 2
)

// TLSARecord is one TLSA record.
type TLSARecord struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// String formats the record like its presentation form: "3 1 1 ab12...".
func (r TLSARecord) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// Usable reports whether SMTP may use the record (RFC 7672 3.1): usage
// DANE-TA or DANE-EE, a known selector, and a known matching type with data
// of the right length.
func (r TLSARecord) Usable() bool {
	if r.Usage != TLSAUsageDANETA && r.Usage != TLSAUsageDANEEE {
		return false
	}
	if r.Selector != TLSASelectorCert && r.Selector != TLSASelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case TLSAMatchFull:
		return len(r.Data) > 0
	case TLSAMatchSHA256:
		return len(r.Data) == sha256.Size
	case TLSAMatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// Matches reports whether the record's data matches cert, by the record's
// selector and matching type. The usage is not looked at.
func (r TLSARecord) Matches(cert *x509.Certificate) bool {
	var in []byte
	switch r.Selector {
	case TLSASelectorCert:
		in = cert.Raw
	case TLSASelectorSPKI:
		in = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case TLSAMatchFull:
		return len(in) > 0 && bytes.Equal(in, r.Data)
	case TLSAMatchSHA256:
		sum := sha256.Sum256(in)
		return bytes.Equal(sum[:], r.Data)
	case TLSAMatchSHA512:
		sum := sha512.Sum512(in)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}

// TLSAFor makes the record of usage, selector and matchingType that matches
// cert: what a zone would publish for it (as `ldns-dane create` or
// `openssl x509 -pubkey | sha256sum` would).
func TLSAFor(cert *x509.Certificate, usage, selector, matchingType uint8) (TLSARecord, error) {
	r := TLSARecord{Usage: usage, Selector: selector, MatchingType: matchingType}
	var in []byte
	switch selector {
	case TLSASelectorCert:
		in = cert.Raw
	case TLSASelectorSPKI:
		in = cert.RawSubjectPublicKeyInfo
	default:
		return r, fmt.Errorf("unknown tlsa selector %d", selector)
	}
	switch matchingType {
	case TLSAMatchFull:
		r.Data = bytes.Clone(in)
	case TLSAMatchSHA256:
		sum := sha256.Sum256(in)
		r.Data = sum[:]
	case TLSAMatchSHA512:
		sum := sha512.Sum512(in)
		r.Data = sum[:]
	default:
		return r, fmt.Errorf("unknown tlsa matching type %d", matchingType)
	}
	return r, nil
}

// TLSAResult is the outcome of a TLSA lookup for one host and port.
type TLSAResult struct {
	// Name is the name asked: "_25._tcp.mx.example.org.".
	Name string
	// Records are all TLSA records found, usable or not.
	Records []TLSARecord
	// Authenticated is true when the resolver set the AD bit on the answer
	// (records found, or their authenticated denial: NXDOMAIN or NODATA).
	Authenticated bool
	// Denied is true when the answer says there are no TLSA records there
	// (NXDOMAIN or NODATA); with Authenticated, an authenticated denial.
	Denied bool
}

// Usable returns the usable records (DANE-TA, DANE-EE; RFC 7672 3.1).
func (r *TLSAResult) Usable() []TLSARecord {
	var out []TLSARecord
	for _, rec := range r.Records {
		if rec.Usable() {
			out = append(out, rec)
		}
	}
	return out
}

// Applies reports whether DANE applies to the host (RFC 7672 2.2): the
// answer is authenticated and holds at least one usable record. Then
// STARTTLS is mandatory and the certificate must match a usable record;
// otherwise DANE does not apply, which is reported but is not a failure.
func (r *TLSAResult) Applies() bool {
	return r != nil && r.Authenticated && len(r.Usable()) > 0
}

// TLSAName is the owner name of the TLSA records of host's port over TCP.
func TLSAName(host string, port uint16) string {
	return "_" + strconv.Itoa(int(port)) + "._tcp." + dns.Fqdn(strings.ToLower(host))
}

// LookupTLSA asks resolver ("host:port"; empty: the first nameserver of
// /etc/resolv.conf) for the TLSA records at _PORT._tcp.HOST, with the DO and
// AD bits, within ctx's deadline. The records count for DANE only when
// the answer is authenticated (the resolver must validate DNSSEC: unbound,
// a local validating resolver; the AD bit of an untrusted, remote resolver
// is worth what the path to it is worth).
//
// CNAMEs: the resolver follows a CNAME at the TLSA name itself, and the
// records are taken from the end of the chain, authenticated only if the
// whole answer is (RFC 7671 7). The MX host name is not first expanded
// through a CNAME of its own (RFC 7672 2.2.2's "secure CNAME expansion"):
// the TLSA base domain is always host as given. An error (SERVFAIL,
// wrapping ErrDNSServFail, which a validating resolver answers to bogus
// data; a timeout) means the records could not be determined: RFC 7672
// senders then defer delivery.
func LookupTLSA(ctx context.Context, resolver, host string, port uint16) (*TLSAResult, error) {
	res := &TLSAResult{Name: TLSAName(host, port)}
	a, err := queryDNSSEC(ctx, resolver, res.Name, dns.TypeTLSA)
	if err != nil {
		return res, fmt.Errorf("tlsa lookup: %w", err)
	}
	res.Authenticated = a.Authenticated
	for _, t := range answersOf[*dns.TLSA](a.Msg) {
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue // the wire format had it as bytes: cannot happen
		}
		res.Records = append(res.Records, TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	res.Denied = a.nxDomain() || len(res.Records) == 0
	return res, nil
}

// DANEMatch says which record a certificate chain matched.
type DANEMatch struct {
	// Record is the usable TLSA record that matched.
	Record TLSARecord
	// Depth is the position in the chain of the certificate that matched
	// it: 0 for the server's own certificate.
	Depth int
}

// ErrDANEMismatch is wrapped by VerifyDANE's error when no usable record
// matches the chain.
var ErrDANEMismatch = errors.New("the certificate matches no usable TLSA record")

// VerifyDANE checks the chain the server presented (leaf first) against the
// usable records (RFC 7672 3.1, 3.2):
//   - DANE-EE(3) matches the server's own certificate (selector 0) or its
//     public key (selector 1); names and dates are not looked at.
//   - DANE-TA(2) matches a certificate of the chain, which then is the trust
//     anchor: the chain from the leaf up to it must verify (signatures,
//     dates), and the leaf must be valid for one of names (RFC 7672 3.2.2:
//     the TLSA base domain, i.e. the MX host name; callers may add the
//     next-hop domain). A wildcard in the certificate matches one leftmost
//     label; the subject's CN is not consulted when the certificate has no
//     DNS names.
//
// Unusable records are ignored. The error wraps ErrDANEMismatch when
// nothing matched, and names what was tried.
func VerifyDANE(records []TLSARecord, chain []*x509.Certificate, names []string) (*DANEMatch, error) {
	if len(chain) == 0 {
		return nil, errors.New("the server sent no certificate")
	}
	leaf := chain[0]
	var taErrs []error
	usable := 0
	for _, r := range records {
		if !r.Usable() {
			continue
		}
		usable++
		switch r.Usage {
		case TLSAUsageDANEEE:
			if r.Matches(leaf) {
				return &DANEMatch{Record: r}, nil
			}
		case TLSAUsageDANETA:
			for depth, c := range chain {
				if !r.Matches(c) {
					continue
				}
				if err := verifyToAnchor(chain, depth, names); err != nil {
					taErrs = append(taErrs, fmt.Errorf("DANE-TA %s matches certificate %d (%s): %w", r, depth, c.Subject, err))
					continue
				}
				return &DANEMatch{Record: r, Depth: depth}, nil
			}
		}
	}
	if usable == 0 {
		return nil, fmt.Errorf("%w: none of the %d records is usable", ErrDANEMismatch, len(records))
	}
	if len(taErrs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrDANEMismatch, errors.Join(taErrs...))
	}
	return nil, fmt.Errorf("%w: %d usable records, leaf %s (SPKI sha256 %x)",
		ErrDANEMismatch, usable, leaf.Subject, sha256.Sum256(leaf.RawSubjectPublicKeyInfo))
}

// verifyToAnchor checks that chain[0] chains up to chain[depth], taken as a
// trust anchor, and that chain[0] is valid for one of names.
func verifyToAnchor(chain []*x509.Certificate, depth int, names []string) error {
	leaf := chain[0]
	var nameErr error
	ok := false
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		if n == "" {
			continue
		}
		if err := leaf.VerifyHostname(n); err == nil {
			ok = true
			break
		} else if nameErr == nil {
			nameErr = err
		}
	}
	if !ok {
		if nameErr == nil {
			nameErr = errors.New("no name to check the certificate against")
		}
		return fmt.Errorf("name check: %w", nameErr)
	}
	roots := x509.NewCertPool()
	roots.AddCert(chain[depth])
	inter := x509.NewCertPool()
	for _, c := range chain[1:depth] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	return nil
}

// DANEResult is what a probe with dane: true reports about one host.
type DANEResult struct {
	// TLSA is the lookup's outcome (nil if it was not made).
	TLSA *TLSAResult
	// LookupErr is a failed lookup (SERVFAIL, timeout).
	LookupErr error
	// Checked is true when DANE applied and a certificate was checked.
	Checked bool
	// Match is the record that matched, when one did.
	Match *DANEMatch
	// VerifyErr says why the certificate matched no record, or why it was
	// not checked although DANE applied (no STARTTLS).
	VerifyErr error
}

// UsableRecords is probe_smtp_dane_tlsa_records.
func (d *DANEResult) UsableRecords() int {
	if d == nil || d.TLSA == nil {
		return 0
	}
	return len(d.TLSA.Usable())
}

// Authenticated is probe_smtp_dane_authenticated.
func (d *DANEResult) Authenticated() bool { return d != nil && d.TLSA != nil && d.TLSA.Authenticated }

// Verified is probe_smtp_dane_verified: ok is false when the series is
// absent (no authenticated usable record).
func (d *DANEResult) Verified() (verified, ok bool) {
	if d == nil || !d.TLSA.Applies() {
		return false, false
	}
	return d.Match != nil, true
}
