package smtp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file holds the probe of every address of a host (Options.AllAddresses).

// ProbeHost probes host:port as Probe does, and with opts.AllAddresses every
// address of the host: one Result per address probed, in resolution order,
// IPv4 first, each dialog concurrent and taking its own Admit slot. Without
// AllAddresses it returns exactly one Result, the one Probe would.
//
// Every address of the host passes opts.CheckAddr before any is dialled; a
// refusal is the only case with a non-nil error (a *Error wrapping
// ErrPolicy, also the single Result's Err), and nothing is dialled then. A
// resolution failure, a failed TLSA lookup or a failed dialog is in the
// Result's Err only. The host's DANE lookup is made once and shared by its
// addresses. Transcript lines of each address carry "host address" in
// TranscriptLine.Host when there are several.
func ProbeHost(ctx context.Context, host string, port uint16, opts *Options) ([]*Result, error) {
	start := time.Now()
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	p := newProber(ctx, host, port, opts, newTranscript(opts.Transcript, start), "")
	p.start = start
	p.all = opts.AllAddresses
	if err := p.prepare(); err != nil {
		res, _ := p.done(err)
		if err.Reason == ReasonPolicy {
			return []*Result{res}, err
		}
		return []*Result{res}, nil
	}
	probers := p.perAddress()
	results := make([]*Result, len(probers))
	forEach(len(probers), func(i int) { results[i], _ = probers[i].done(probers[i].run()) })
	return results, nil
}

// perAddress returns one prober per address to dial once p is prepared:
// p itself without AllAddresses or with one address, else one copy of p
// per address, each with its own Result (resolution phases shared) and its
// own DANEResult on the shared TLSA lookup.
func (p *prober) perAddress() []*prober {
	if !p.all || len(p.addrs) <= 1 {
		return []*prober{p}
	}
	out := make([]*prober, len(p.addrs))
	for i, a := range p.addrs {
		out[i] = p.forAddr(a)
	}
	return out
}

// forAddr copies the prepared prober p for address a.
func (p *prober) forAddr(a netip.Addr) *prober {
	res := *p.res
	res.Phases = slices.Clone(p.res.Phases)
	if d := p.res.DANE; d != nil {
		res.DANE = &DANEResult{TLSA: d.TLSA, LookupErr: d.LookupErr}
	}
	trHost := p.res.Host + " " + a.String()
	c := &prober{ctx: p.ctx, opts: p.opts, res: &res, start: p.start, tr: p.tr, trHost: trHost,
		password: p.password, all: true, addrs: []netip.Addr{a},
		// Each dialog adds the secrets it sends (an AUTH blob, a token):
		// its own list, not an alias of a shared backing array.
		secrets: secrets{list: slices.Clone(p.secrets.list)}}
	c.setAddr(a)
	return c
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

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
