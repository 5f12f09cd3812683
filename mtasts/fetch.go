package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/smtp-exporter/smtp_exporter/dnssec"
	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

// Options says how to fetch a domain's MTA-STS policy.
type Options struct {
	// Resolver is the DNS server, "host:port"; empty: the nameservers of
	// /etc/resolv.conf, in order.
	Resolver string
	// TLSConfig verifies the policy server; nil: the system's roots. Its
	// ServerName is set to mta-sts.DOMAIN.
	TLSConfig *tls.Config
	// CheckAddr, when not nil, vets every address of mta-sts.DOMAIN before
	// anything is dialled; the fetch then dials a vetted address itself. An
	// error from it is returned wrapped (the caller maps it to its policy
	// refusal).
	CheckAddr func(host string, addr netip.Addr) error

	// Port is where the policy's HTTPS server is dialled: 0 means 443, as
	// RFC 8461 3.3 says; another value serves tests on loopback.
	Port uint16
}

// Result is the outcome of an MTA-STS discovery for a domain.
type Result struct {
	// Records are the TXT records at _mta-sts.DOMAIN that begin with
	// "v=STSv1"; exactly one must be there, or the domain has no policy.
	Records []string
	// Record is the parsed record, nil when the domain has none.
	Record *Record
	// PolicyURL is the address the policy was fetched from.
	PolicyURL string
	// Addr is the address dialled for the policy.
	Addr netip.Addr
	// Policy is the parsed policy, nil when none was fetched.
	Policy *Policy
	// Duration is the time of the lookup and the fetch.
	Duration time.Duration
}

// ErrNoPolicy is returned when the domain publishes no MTA-STS record
// (none, or not exactly one beginning with "v=STSv1"). Not a failure of
// the probe: the domain simply has no policy.
var ErrNoPolicy = errors.New("the domain publishes no mta-sts record")

// Lookup discovers domain's policy: the _mta-sts.DOMAIN TXT record,
// then https://mta-sts.DOMAIN/.well-known/mta-sts.txt, all within ctx's
// deadline. The policy host's addresses come from opts.Resolver, each
// vetted by opts.CheckAddr before the first one that passes is dialled; the
// fetch follows no redirect, wants 200 and text/plain, and reads at most
// MaxPolicySize bytes. The error wraps ErrNoPolicy when there is no
// record, context.DeadlineExceeded when time ran out.
func Lookup(ctx context.Context, domain string, opts Options) (*Result, error) {
	res, err := lookup(ctx, domain, opts)
	// The error may quote what the policy's server controls: its status
	// line, headers, certificate names, policy lines.
	return res, textsafe.Error(err, nil)
}

func lookup(ctx context.Context, domain string, opts Options) (*Result, error) {
	start := time.Now()
	res := &Result{}
	defer func() { res.Duration = time.Since(start) }()
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	txts, err := dnssec.LookupTXT(ctx, opts.Resolver, "_mta-sts."+domain)
	if err != nil {
		return res, fmt.Errorf("mta-sts record: %w", err)
	}
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") || t == "v=STSv1" {
			res.Records = append(res.Records, t)
		}
	}
	if len(res.Records) != 1 {
		return res, fmt.Errorf("%w (%d records begin with v=STSv1 at _mta-sts.%s)", ErrNoPolicy, len(res.Records), domain)
	}
	if res.Record, err = ParseRecord(res.Records[0]); err != nil {
		return res, fmt.Errorf("%w: %w", ErrNoPolicy, err)
	}
	body, err := fetchPolicy(ctx, domain, opts, res)
	if err != nil {
		return res, err
	}
	if res.Policy, err = ParsePolicy(body); err != nil {
		return res, err
	}
	return res, nil
}

// fetchPolicy resolves mta-sts.DOMAIN, vets its addresses and fetches
// the policy from the first vetted one.
func fetchPolicy(ctx context.Context, domain string, opts Options, res *Result) ([]byte, error) {
	host := "mta-sts." + domain
	addrs, err := lookupAddrs(ctx, opts.Resolver, host)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy host: %w", err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("mta-sts policy host %s has no address", host)
	}
	for _, a := range addrs {
		if opts.CheckAddr == nil {
			break
		}
		if err := opts.CheckAddr(host, a); err != nil {
			return nil, fmt.Errorf("%w: %s (%s): %w", ErrRefused, host, a, err)
		}
	}
	port := "443"
	if opts.Port != 0 {
		port = strconv.Itoa(int(opts.Port))
	}
	var cfg *tls.Config
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	cfg.ServerName = host
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	// The transport dials the vetted addresses, in order, never the name.
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var errs []error
		for _, a := range addrs {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				res.Addr = a
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSClientConfig:        cfg,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res.PolicyURL = "https://" + host + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, res.PolicyURL, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy fetch: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts policy fetch: %s answered %q (redirects are not followed)", res.PolicyURL, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("mta-sts policy fetch: content type %q is not text/plain", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("mta-sts policy fetch: reading the body: %w", err)
	}
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("mta-sts policy fetch: the policy is larger than %d bytes", MaxPolicySize)
	}
	return body, nil
}

// lookupAddrs returns the A and AAAA addresses of host (A first), through
// resolver. The answers need not be authenticated: the policy's integrity
// comes from the HTTPS server's certificate.
func lookupAddrs(ctx context.Context, resolver, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, err := dnssec.Query(ctx, resolver, host, qt)
		if err != nil {
			return nil, err
		}
		for _, rr := range a.Msg.Answer {
			var ip net.IP
			switch r := rr.(type) {
			case *dns.A:
				ip = r.A
			case *dns.AAAA:
				ip = r.AAAA
			default:
				continue
			}
			if addr, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, addr.Unmap())
			}
		}
	}
	return out, nil
}
