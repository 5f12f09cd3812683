// Package dane judges a server's certificate by its DNSSEC-authenticated
// TLSA records, as an SMTP client does under RFC 7672: it looks the records
// up (LookupTLSA, with the CNAME rules of section 2.2.2), says which are
// usable (DANE-TA and DANE-EE, section 3.1) and whether DANE applies to the
// host, and verifies a presented chain against them (Verify: the record
// match of RFC 6698 and the name checks of section 3.2). The verdicts are
// pure functions of the records, the chain and the reference names, so
// they are tested without a network.
//
// It never dials the server, never decides what a failure means for a
// probe, and trusts the AD bit of the resolver it is given (see package
// dnssec).
package dane

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
)

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

// TLSAResult is the outcome of the DANE lookups for one host and port.
type TLSAResult struct {
	// Host is the MX host name as given, lower case, without the final dot.
	Host string
	// HostAuthenticated is true when the host's address lookup (A) was
	// DNSSEC-authenticated along its whole CNAME chain, or, when the chain
	// leads into an unsigned zone, when host's own CNAME record is (a
	// secure alias, RFC 7672 2.2.2). Without it TLSA records are not even
	// looked up (RFC 7672 2.2): DANE does not apply.
	HostAuthenticated bool
	// BaseDomain is the TLSA base domain: the target of host's CNAME chain
	// when that chain is authenticated and authenticated TLSA records were
	// found there, else host (RFC 7672 2.2.2). It is the name a DANE
	// client sends as SNI (RFC 7672 8.1).
	BaseDomain string
	// Name is the owner of the records: "_25._tcp.mx.example.org." (the
	// name that would have been asked, when the host is not authenticated).
	Name string
	// Records are all TLSA records found, usable or not.
	Records []TLSARecord
	// Authenticated is true when the resolver set the AD bit on the TLSA
	// answer (records found, or their authenticated denial: NXDOMAIN or
	// NODATA). probe_smtp_dane_authenticated.
	Authenticated bool
	// Denied is true when the answer says there are no TLSA records there
	// (NXDOMAIN or NODATA); with Authenticated, an authenticated denial.
	Denied bool
	// Resolver is the resolver asked ("host:port"): the one whose AD bit
	// was trusted.
	Resolver string
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

// Applies reports whether DANE applies to the host (RFC 7672 2.2): its
// address and its TLSA answer are authenticated, and the answer holds at
// least one usable record. Then STARTTLS is mandatory and the certificate
// must match a usable record; otherwise DANE does not apply, which is
// reported but is not a failure.
func (r *TLSAResult) Applies() bool {
	return r != nil && r.HostAuthenticated && r.Authenticated && len(r.Usable()) > 0
}

// RequiresTLS reports whether the lookup makes TLS mandatory: the address
// and the TLSA answer are authenticated and hold at least one record,
// usable or not. A secure TLSA RRset says the server offers TLS; when all
// its records are unusable (PKIX-TA, PKIX-EE, unknown parameters) the
// client must still not deliver in the clear, but has nothing to
// authenticate the server with (RFC 7672 2.2, 3.1.3): Postfix's "dane"
// level falls back to "encrypt" then, and mox requires STARTTLS without
// verifying the certificate.
func (r *TLSAResult) RequiresTLS() bool {
	return r != nil && r.HostAuthenticated && r.Authenticated && len(r.Records) > 0
}

// ReferenceNames are the names a DANE-TA chain's leaf may be issued to
// (RFC 7672 3.2.2), each once, lower case: the TLSA base domain, the MX
// host name when the base domain is its CNAME expansion, and nextHop, the
// next-hop domain: the recipient domain whose MX records named the host
// (the host itself for a target that is not a domain; empty adds nothing).
func (r *TLSAResult) ReferenceNames(nextHop string) []string {
	var out []string
	for _, n := range []string{r.BaseDomain, r.Host, nextHop} {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Verify checks the chain the server presented against the usable records,
// with the reference names of the lookup and nextHop: Verify(r.Usable(),
// chain, r.ReferenceNames(nextHop)). Call it only when Applies.
func (r *TLSAResult) Verify(chain []*x509.Certificate, nextHop string) (*Match, error) {
	return Verify(r.Usable(), chain, r.ReferenceNames(nextHop))
}

// TLSAName is the owner name of the TLSA records of host's port over TCP.
func TLSAName(host string, port uint16) string {
	return "_" + strconv.Itoa(int(port)) + "._tcp." + dns.Fqdn(strings.ToLower(host))
}

// maxCNAMEs bounds the CNAME chain followed from an MX host name.
const maxCNAMEs = 8

// LookupTLSA makes the DANE lookups for an MX host (RFC 7672 2.2) through
// resolver ("host:port"; empty: the nameservers of /etc/resolv.conf, in order),
// with the DO and AD bits, within ctx's deadline:
//   - host's A record, to learn whether its address is authenticated and
//     whether host is an alias (a CNAME chain, of at most 8 links); when
//     that answer is not authenticated but host is an alias, host's CNAME
//     record alone, which may be (a secure alias to an unsigned zone);
//   - only when one of them is authenticated, the TLSA records: at
//     _PORT._tcp.BASE, where BASE is the chain's target when the whole
//     chain is authenticated, then, if that name has no authenticated
//     records (none, or an answer without the AD bit), at _PORT._tcp.HOST
//     (RFC 7672 2.2.2). A CNAME at the TLSA name itself is followed by the
//     resolver (RFC 7671 7).
//
// A host whose address is not authenticated gets no TLSA lookup at all
// (RFC 7672 2.2: DANE does not apply to it): a broken nameserver for the
// TLSA names of an unsigned zone, common in the wild, then fails nothing.
// This is what Postfix (tls_dane_resolve, without
// smtp_tls_force_insecure_host_tlsa_lookup) and mox (GatherTLSA) do;
// posttls-finger agrees with it in the tests.
//
// The records count for DANE only when both answers are authenticated: the
// resolver must validate DNSSEC (unbound, a local validating resolver; the
// AD bit of a remote resolver is worth what the path to it is worth). An
// error (SERVFAIL, wrapping dnssec.ErrServFail, which a validating resolver
// answers to bogus data; a timeout) means the records could not be
// determined: RFC 7672 senders then defer delivery.
func LookupTLSA(ctx context.Context, resolver, host string, port uint16) (*TLSAResult, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	res := &TLSAResult{Host: host, BaseDomain: host, Name: TLSAName(host, port)}
	addr, err := dnssec.ResolverAddr(resolver)
	if err != nil {
		return res, fmt.Errorf("tlsa lookup: %w", err)
	}
	res.Resolver = addr
	a, err := dnssec.Query(ctx, addr, host, dns.TypeA)
	if err != nil {
		return res, fmt.Errorf("tlsa lookup: address of %s: %w", host, err)
	}
	res.HostAuthenticated = a.Authenticated
	target := cnameTarget(a.Msg, host)
	if !a.Authenticated && target != host {
		// The chain is not secure as a whole; host's own alias may be.
		c, err := dnssec.Query(ctx, addr, host, dns.TypeCNAME)
		if err != nil {
			return res, fmt.Errorf("tlsa lookup: alias %s: %w", host, err)
		}
		res.HostAuthenticated = c.Authenticated && len(dnssec.AnswersOf[*dns.CNAME](c.Msg)) > 0
	}
	if !res.HostAuthenticated {
		return res, nil // no TLSA lookup for an insecure host (RFC 7672 2.2)
	}
	if target != host && a.Authenticated {
		expanded, err := lookupTLSAAt(ctx, addr, target, port)
		if err != nil {
			return res, err
		}
		// Records without the AD bit at the expanded name are as good as
		// none: they must not hide authenticated ones at host's own name.
		if len(expanded.Records) > 0 && expanded.Authenticated {
			expanded.Host, expanded.HostAuthenticated = host, true
			return expanded, nil
		}
	}
	at, err := lookupTLSAAt(ctx, addr, host, port)
	if err != nil {
		return res, err
	}
	at.Host, at.HostAuthenticated = host, true
	return at, nil
}

// cnameTarget follows the CNAME chain from name in the answer section.
func cnameTarget(m *dns.Msg, name string) string {
	cnames := dnssec.AnswersOf[*dns.CNAME](m)
	cur := dns.Fqdn(name)
	for i := 0; i < maxCNAMEs; i++ {
		next := ""
		for _, c := range cnames {
			if strings.EqualFold(c.Hdr.Name, cur) {
				next = c.Target
				break
			}
		}
		if next == "" {
			break
		}
		cur = next
	}
	return strings.ToLower(strings.TrimSuffix(cur, "."))
}

// lookupTLSAAt asks for the TLSA records at _PORT._tcp.BASE.
func lookupTLSAAt(ctx context.Context, resolver, base string, port uint16) (*TLSAResult, error) {
	res := &TLSAResult{BaseDomain: base, Name: TLSAName(base, port), Resolver: resolver}
	a, err := dnssec.Query(ctx, resolver, res.Name, dns.TypeTLSA)
	if err != nil {
		return res, fmt.Errorf("tlsa lookup: %w", err)
	}
	res.Authenticated = a.Authenticated
	for _, t := range dnssec.AnswersOf[*dns.TLSA](a.Msg) {
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			continue // the wire format had it as bytes: cannot happen
		}
		res.Records = append(res.Records, TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	res.Denied = a.NXDomain() || len(res.Records) == 0
	return res, nil
}

// Match says which record a certificate chain matched.
type Match struct {
	// Record is the usable TLSA record that matched.
	Record TLSARecord
	// Depth is the position in the chain of the certificate that matched
	// it: 0 for the server's own certificate.
	Depth int
}

// ErrMismatch is wrapped by Verify's error when no usable record
// matches the chain.
var ErrMismatch = errors.New("the certificate matches no usable TLSA record")

// Verify checks the chain the server presented (leaf first) against the
// usable records (RFC 7672 3.1, 3.2):
//   - DANE-EE(3) matches the server's own certificate (selector 0) or its
//     public key (selector 1); names and dates are not looked at.
//   - DANE-TA(2) matches a certificate of the chain, which then is the trust
//     anchor: the chain from the leaf up to it must verify (signatures,
//     dates), and the leaf must be issued to one of names (see
//     TLSAResult.ReferenceNames, and MatchName for how).
//
// Unusable records are ignored. The error wraps ErrMismatch when
// nothing matched, and names what was tried.
func Verify(records []TLSARecord, chain []*x509.Certificate, names []string) (*Match, error) {
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
				return &Match{Record: r}, nil
			}
		case TLSAUsageDANETA:
			for depth, c := range chain {
				if !r.Matches(c) {
					continue
				}
				if err := verifyToAnchor(chain, depth, names); err != nil {
					taErrs = append(taErrs, fmt.Errorf("DANE-TA %s matches certificate %d (%q): %w", r, depth, c.Subject.String(), err))
					continue
				}
				return &Match{Record: r, Depth: depth}, nil
			}
		}
	}
	if usable == 0 {
		return nil, fmt.Errorf("%w: none of the %d records is usable", ErrMismatch, len(records))
	}
	if len(taErrs) > 0 {
		msgs := make([]string, len(taErrs))
		for i, e := range taErrs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%w: %s", ErrMismatch, strings.Join(msgs, "; ")) // one line
	}
	return nil, fmt.Errorf("%w: %d usable records, leaf %q (SPKI sha256 %x)",
		ErrMismatch, usable, leaf.Subject.String(), sha256.Sum256(leaf.RawSubjectPublicKeyInfo))
}

// verifyToAnchor checks that chain[0] chains up to chain[depth], taken as a
// trust anchor, and that chain[0] is issued to one of names.
func verifyToAnchor(chain []*x509.Certificate, depth int, names []string) error {
	leaf := chain[0]
	if err := MatchName(leaf, names); err != nil {
		return fmt.Errorf("name check: %w", err)
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

// MatchName checks that leaf is issued to one of the reference names, as
// RFC 7672 3.2.2 and 3.2.3 say a DANE-TA(2) leaf is checked: its DNS
// subject alternative names, or, only when it has none, its subject CN
// (the CN-ID); a wildcard is the whole leftmost label of the presented
// name and stands for exactly one label ("*.example.org" matches
// "mx.example.org", not "a.mx.example.org" nor "example.org"). Case and a
// final dot do not matter. Postfix checks the same way (OpenSSL's
// X509_check_host); Go's crypto/x509 no longer reads the CN, so this does
// not use VerifyHostname.
func MatchName(leaf *x509.Certificate, names []string) error {
	presented := leaf.DNSNames
	kind := "DNS names"
	if len(presented) == 0 {
		if leaf.Subject.CommonName == "" {
			return errors.New("the certificate has neither a DNS name nor a subject CN")
		}
		presented, kind = []string{leaf.Subject.CommonName}, "subject CN (it has no DNS name)"
	}
	asked := 0
	for _, ref := range names {
		if ref = strings.TrimSuffix(ref, "."); ref == "" {
			continue
		}
		asked++
		for _, id := range presented {
			if matchID(id, ref) {
				return nil
			}
		}
	}
	if asked == 0 {
		return errors.New("no name to check the certificate against")
	}
	return fmt.Errorf("the certificate's %s %q match none of %q", kind, presented, names)
}

// matchID reports whether the presented identifier id matches the
// reference name ref.
func matchID(id, ref string) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	ref = strings.ToLower(strings.TrimSuffix(ref, "."))
	if id == ref {
		return !strings.Contains(id, "*")
	}
	rest, ok := strings.CutPrefix(id, "*.")
	if !ok || rest == "" || strings.Contains(rest, "*") {
		return false
	}
	label, after, ok := strings.Cut(ref, ".")
	return ok && label != "" && after == rest
}
