// Package dnssec asks a DNS resolver questions with the DO and AD bits set,
// so that a validating resolver says whether it authenticated the answer
// (RFC 4035 section 3.2.3, RFC 6840 section 5.7). It retries over TCP when
// the UDP answer is truncated, bounds every exchange by the context's
// deadline, and returns SERVFAIL (what a validating resolver answers to
// bogus data) as its own error, ErrServFail, never as "no record".
//
// It never validates signatures itself: the AD bit is trusted from the
// resolver it is given, which should therefore be on a loopback address
// (RFC 4035 section 4.9.3). It knows nothing of SMTP, DANE or MTA-STS.
package dnssec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds a query whose context carries no deadline.
const DefaultTimeout = 10 * time.Second

// systemPort, when set, replaces the port of the system's nameservers; a
// variable only so that tests can run them on loopback ports of their own.
var systemPort = ""

// resolvConf is where the system's resolver is configured; a variable only
// so that tests can point it elsewhere.
var resolvConf = "/etc/resolv.conf"

// ErrServFail is wrapped by a lookup that the resolver answered with
// SERVFAIL. A validating resolver answers SERVFAIL to data whose DNSSEC
// signatures do not validate ("bogus"), so for DANE and MTA-STS this is not
// the same as "no record".
var ErrServFail = errors.New("the resolver answered SERVFAIL")

// Answer is the answer to one DNSSEC-aware query.
type Answer struct {
	// Msg is the resolver's answer (rcode NOERROR or NXDOMAIN).
	Msg *dns.Msg
	// Authenticated is true when the resolver set the AD bit: it validated
	// the answer, or the denial of existence, with DNSSEC.
	Authenticated bool
}

// NXDomain reports whether the name does not exist.
func (a *Answer) NXDomain() bool { return a.Msg.Rcode == dns.RcodeNameError }

// ResolverAddr returns the "host:port" to ask: resolver itself (":53" added
// when it has no port), or, when empty, the first nameserver of
// /etc/resolv.conf.
func ResolverAddr(resolver string) (string, error) {
	if resolver == "" {
		cc, err := dns.ClientConfigFromFile(resolvConf)
		if err != nil {
			return "", fmt.Errorf("reading the system's resolver: %w", err)
		}
		if len(cc.Servers) == 0 {
			return "", fmt.Errorf("no nameserver in %s", resolvConf)
		}
		return net.JoinHostPort(cc.Servers[0], cc.Port), nil
	}
	if _, _, err := net.SplitHostPort(resolver); err == nil {
		return resolver, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(resolver, "["), "]")
	if host == "" {
		return "", fmt.Errorf("resolver %q has no host", resolver)
	}
	return net.JoinHostPort(host, "53"), nil
}

// Query asks resolver ("host:port"; empty: the system's nameservers, see
// below) for name and qtype with the DO and AD bits set, so a validating
// resolver says whether it authenticated the answer. It gives up at ctx's
// deadline (DefaultTimeout without one), retries over TCP when the UDP
// answer is truncated, and returns an error for any rcode other than
// NOERROR and NXDOMAIN (wrapping ErrServFail for SERVFAIL).
//
// With the system's resolver, the nameservers of /etc/resolv.conf are asked
// in order, as the C library and Go's resolver do: the next one when a
// server does not answer within its share of the time left, cannot be
// reached, or answers SERVFAIL or REFUSED. The AD bit then comes from
// whichever answered.
func Query(ctx context.Context, resolver, name string, qtype uint16) (*Answer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	if resolver != "" {
		addr, err := ResolverAddr(resolver)
		if err != nil {
			return nil, err
		}
		return queryOne(ctx, addr, name, qtype)
	}
	servers, err := SystemServers()
	if err != nil {
		return nil, err
	}
	var last error
	for i, addr := range servers {
		// Each server left gets an equal share of the time left; the last
		// gets all of it.
		deadline, _ := ctx.Deadline()
		sctx, cancel := context.WithTimeout(ctx, time.Until(deadline)/time.Duration(len(servers)-i))
		a, err := queryOne(sctx, addr, name, qtype)
		cancel()
		if err == nil || ctx.Err() != nil || !nextServer(err) {
			return a, err
		}
		last = err
	}
	return nil, last
}

// errRefused is wrapped by the error of a server that answered REFUSED.
var errRefused = errors.New("the resolver answered REFUSED")

// nextServer reports whether err, from one server, lets another be asked:
// no answer, no connection, SERVFAIL or REFUSED.
func nextServer(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrServFail) || errors.Is(err, errRefused) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED)
}

// SystemServers returns the nameservers of /etc/resolv.conf, "host:port",
// in the order Query asks them.
func SystemServers() ([]string, error) {
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("reading the system's resolver: %w", err)
	}
	if len(cc.Servers) == 0 {
		return nil, fmt.Errorf("no nameserver in %s", resolvConf)
	}
	port := cc.Port
	if systemPort != "" {
		port = systemPort
	}
	out := make([]string, len(cc.Servers))
	for i, s := range cc.Servers {
		out[i] = net.JoinHostPort(s, port)
	}
	return out, nil
}

// queryOne asks the one server at addr.
func queryOne(ctx context.Context, addr, name string, qtype uint16) (*Answer, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	q.AuthenticatedData = true
	q.SetEdns0(1232, true) // the DNS flag day 2020 size: no IP fragments
	resp, err := exchange(ctx, "udp", addr, q)
	if err == nil && resp.Truncated {
		resp, err = exchange(ctx, "tcp", addr, q)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s for %s %s: %w", addr, dns.Fqdn(name), dns.TypeToString[qtype], err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeServerFailure:
		return nil, fmt.Errorf("asking %s for %s %s: %w", addr, dns.Fqdn(name), dns.TypeToString[qtype], ErrServFail)
	case dns.RcodeRefused:
		return nil, fmt.Errorf("asking %s for %s %s: %w", addr, dns.Fqdn(name), dns.TypeToString[qtype], errRefused)
	default:
		return nil, fmt.Errorf("asking %s for %s %s: the resolver answered %s",
			addr, dns.Fqdn(name), dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode])
	}
	return &Answer{Msg: resp, Authenticated: resp.AuthenticatedData}, nil
}

// exchange sends q over network ("udp" or "tcp") to addr and reads the
// answer, within ctx: its deadline bounds every step and its cancellation
// closes the connection.
func exchange(ctx context.Context, network, addr string, q *dns.Msg) (*dns.Msg, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	c := &dns.Client{Net: network, Timeout: time.Until(deadline)}
	conn := &dns.Conn{Conn: nc}
	resp, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%w (%v)", ctxErr, err)
		}
		// Every deadline of the exchange is ctx's: a timeout is its expiry,
		// seen by the socket a moment before the context's own timer.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
		}
		return nil, err
	}
	if resp.Id != q.Id {
		return nil, dns.ErrId
	}
	return resp, nil
}

// AnswersOf returns the records of type T in the answer section, whatever
// their owner name (the resolver has followed any CNAME to them).
func AnswersOf[T dns.RR](m *dns.Msg) []T {
	var out []T
	for _, rr := range m.Answer {
		if r, ok := rr.(T); ok {
			out = append(out, r)
		}
	}
	return out
}

// LookupTXT returns the TXT records at name, each one's strings joined. A
// name that does not exist, or has no TXT record, gives no records and no
// error.
func LookupTXT(ctx context.Context, resolver, name string) ([]string, error) {
	a, err := Query(ctx, resolver, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range AnswersOf[*dns.TXT](a.Msg) {
		out = append(out, strings.Join(t.Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records at name (those of the target of any CNAME
// the resolver followed), with their host names as given (a trailing dot,
// "." for a null MX), and whether the resolver authenticated the answer:
// the records, or the denial that there are any (RFC 4035 3.2.3). A name
// that does not exist, or has no MX records, gives no records and no
// error. Like Go's net.LookupMX, it refuses an answer naming a host that is
// not a valid domain name.
func LookupMX(ctx context.Context, resolver, name string) (mxs []*net.MX, authenticated bool, err error) {
	a, err := Query(ctx, resolver, name, dns.TypeMX)
	if err != nil {
		return nil, false, err
	}
	for _, mx := range AnswersOf[*dns.MX](a.Msg) {
		if mx.Mx != "." && !isHostName(mx.Mx) {
			return nil, a.Authenticated, fmt.Errorf("MX record of %s names an invalid host %q", dns.Fqdn(name), mx.Mx)
		}
		mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return mxs, a.Authenticated, nil
}

// isHostName reports whether s (with or without its trailing dot) is a
// host name as Go's resolver accepts one: labels of 1 to 63 letters,
// digits, underscores and inner hyphens, at most 253 characters in all.
func isHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
			if !letter && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
