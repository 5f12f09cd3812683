package smtp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"
)

// This file holds what comes before the dialog: name resolution, the
// address policy, admission and the dial.

// ErrPolicy is wrapped by the error of a probe that the caller's address
// policy (Options.CheckAddr) refused; nothing was dialled then.
var ErrPolicy = errors.New("refused by the address policy")

// policyRefusal is the policy's own error, marked as a refusal: its text is
// the policy's, and it matches both ErrPolicy and the policy's error.
type policyRefusal struct{ err error }

func (e *policyRefusal) Error() string   { return e.err.Error() }
func (e *policyRefusal) Unwrap() []error { return []error{ErrPolicy, e.err} }

func policyError(err error) *Error {
	return &Error{Phase: PhaseConnect, Reason: ReasonPolicy, Err: &policyRefusal{err}}
}

// Refusal marks err, the address policy's own error, as a refusal: its text
// is err's, and it matches both ErrPolicy and err (errors.Is).
func Refusal(err error) error { return &policyRefusal{err} }

// PolicyError is the failure of a host that the address policy refused, or
// that was not dialled because another host of the same probe was refused:
// phase connect, ReasonPolicy, wrapping ErrPolicy and err.
func PolicyError(err error) *Error { return policyError(err) }

func (p *prober) resolve() *Error {
	t := time.Now()
	addrs, literal, err := p.lookup()
	if !literal {
		p.res.DNSDuration = time.Since(t)
	}
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseResolve, Duration: p.res.DNSDuration})
	if err != nil {
		return err
	}
	if check := p.opts.CheckAddr; check != nil {
		for _, a := range addrs {
			if err := check(p.res.Host, a); err != nil {
				return policyError(err)
			}
		}
	}
	if p.all {
		p.addrs = orderAddrs(addrs)
		if len(p.addrs) == MaxAddresses && len(addrs) > MaxAddresses {
			p.note("%s has %d addresses: probing the first %d", p.res.Host, len(addrs), len(p.addrs))
		}
		p.setAddr(p.addrs[0])
		if !literal {
			p.note("resolved %s to %s via %s in %s", p.res.Host, joinAddrs(p.addrs), p.opts.resolverName(), p.res.DNSDuration.Round(time.Microsecond))
		}
		return nil
	}
	addr, ok := pickAddr(addrs, p.opts.IPProtocol, p.opts.IPProtocolFallback)
	if !ok {
		return &Error{Phase: PhaseResolve, Reason: ReasonResolve,
			Err: fmt.Errorf("%s has no %s address (via %s)", p.res.Host, ipName(p.opts.IPProtocol), p.opts.resolverName())}
	}
	p.setAddr(addr)
	if !literal {
		p.note("resolved %s to %s via %s in %s", p.res.Host, addr, p.opts.resolverName(), p.res.DNSDuration.Round(time.Microsecond))
	}
	return nil
}

// orderAddrs returns the distinct addresses, IPv4 first, each family in
// resolution order, at most MaxAddresses.
func orderAddrs(addrs []netip.Addr) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if slices.Contains(v4, a) || slices.Contains(v6, a) {
			continue
		}
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	out := append(v4, v6...)
	if len(out) > MaxAddresses {
		out = out[:MaxAddresses]
	}
	return out
}

// setAddr records the address to dial.
func (p *prober) setAddr(addr netip.Addr) {
	p.res.IPProtocol = 4
	if addr.Is6() {
		p.res.IPProtocol = 6
	}
	p.res.Addr = netip.AddrPortFrom(addr, p.res.Port)
}

// lookup returns the host's addresses, unmapped; an IP literal is its own
// (literal is then true).
func (p *prober) lookup() (addrs []netip.Addr, literal bool, _ *Error) {
	if a, err := netip.ParseAddr(p.res.Host); err == nil {
		if a.Zone() != "" {
			return nil, true, &Error{Phase: PhaseResolve, Reason: ReasonResolve, Err: errors.New("addresses with a zone are not probed")}
		}
		return []netip.Addr{a.Unmap()}, true, nil
	}
	network := "ip"
	if !p.opts.IPProtocolFallback && !p.all {
		network = ipName(p.opts.IPProtocol)
	}
	addrs, err := p.opts.resolver().LookupNetIP(p.ctx, network, p.res.Host)
	if err != nil {
		reason := ReasonResolve
		if p.ctx.Err() != nil {
			reason = ReasonTimeout
		}
		return nil, false, &Error{Phase: PhaseResolve, Reason: reason, Err: p.opts.ResolveError("resolving "+p.res.Host, err)}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, false, nil
}

// ResolveError says what failed (action: "resolving mx.example.org") and
// names the resolver that was asked. With a resolver of the options' own,
// Go's error would name the system's server, which was not asked: that name
// is dropped.
func (o *Options) ResolveError(action string, err error) error {
	var dnsErr *net.DNSError
	if o.Resolver != "" && errors.As(err, &dnsErr) && dnsErr.Server != "" {
		c := *dnsErr
		c.Server = ""
		err = &c
	}
	return fmt.Errorf("%s via %s: %w", action, o.resolverName(), err)
}

func ipName(proto string) string {
	if proto == "ip6" {
		return "ip6"
	}
	return "ip4"
}

// pickAddr chooses the first address of the preferred family, or of the
// other with fallback. An IP literal is used as it is.
func pickAddr(addrs []netip.Addr, proto string, fallback bool) (netip.Addr, bool) {
	want6 := proto == "ip6"
	for _, a := range addrs {
		if a.Is6() == want6 {
			return a, true
		}
	}
	if (fallback || len(addrs) == 1) && len(addrs) > 0 {
		return addrs[0], true
	}
	return netip.Addr{}, false
}

// connect takes an admission slot (Options.Admit) and dials the vetted
// address. release gives the slot back; it is to be called once the
// connection is closed.
func (p *prober) connect() (release func(), _ *Error) {
	t := time.Now()
	release = func() {}
	if admit := p.opts.Admit; admit != nil {
		r, err := admit(p.ctx)
		if err != nil {
			p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseConnect, Duration: time.Since(t)})
			reason := ReasonOverload
			if p.ctx.Err() != nil {
				reason = ReasonTimeout
			}
			return nil, &Error{Phase: PhaseConnect, Reason: reason, Err: fmt.Errorf("no capacity for the connection: %w", err)}
		}
		if r != nil {
			release = r
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(p.ctx, "tcp", p.res.Addr.String())
	p.res.Phases = append(p.res.Phases, PhaseResult{Phase: PhaseConnect, Duration: time.Since(t)})
	if err != nil {
		release()
		reason := ReasonConnect
		if p.ctx.Err() != nil || isTimeout(err) {
			reason = ReasonTimeout
		}
		return nil, &Error{Phase: PhaseConnect, Reason: reason, Err: &dialError{addr: p.res.Addr.String(), err: err}}
	}
	deadline, _ := p.ctx.Deadline()
	conn.SetDeadline(deadline)
	p.conn = conn
	p.note("connected to %s from %s", conn.RemoteAddr(), conn.LocalAddr())
	return release, nil
}

// dialError is a failed TCP connection said once: "192.0.2.1:25: connection
// refused" (Go's own text, "dial tcp 192.0.2.1:25: connect: connection
// refused", names the call twice).
type dialError struct {
	addr string
	err  error
}

func (e *dialError) Error() string {
	var se *os.SyscallError
	if errors.As(e.err, &se) {
		return e.addr + ": " + se.Err.Error()
	}
	return e.err.Error()
}

func (e *dialError) Unwrap() error { return e.err }
