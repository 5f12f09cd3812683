package probe

import (
	"cmp"
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// This file holds the probe of one host: its sessions prepared (resolved,
// every address vetted, the TLSA records looked up) and one dialog per
// address to probe.

// walk is one probe's path through its hosts: what their sessions share.
type walk struct {
	ctx  context.Context
	plan *Plan
	opts *smtp.Options // the plan's, with this probe's hooks
	tr   *smtp.Transcript
	// domain is the recipient domain of an mx_lookup probe (set by
	// probeMX): the next-hop domain of its exchangers' DANE name checks.
	domain string
}

// hostProbe is one host, prepared.
type hostProbe struct {
	s     *smtp.Session
	addrs []netip.Addr // the vetted addresses to probe
	dane  *DANEResult  // the host's TLSA lookup, with dane: true
	err   *smtp.Error  // the preparation's failure
}

// prepare resolves host and vets its addresses (every one with
// addresses: all), then looks up its TLSA records when the module asks for
// DANE; tag names the host in the transcript.
func (w *walk) prepare(host string, port uint16, tag string) *hostProbe {
	h := &hostProbe{s: smtp.NewSession(w.ctx, host, port, w.opts, w.tr, tag)}
	h.addrs, h.err = h.s.Prepare(w.plan.AllAddresses)
	if h.err == nil {
		h.err = w.lookupDANE(h)
	}
	return h
}

// lookupDANE looks up the host's TLSA records (not for an IP literal, nor
// with TLS none). Its time counts in the resolve phase, which is where a
// failed lookup fails the probe (see NewDANEResult).
func (w *walk) lookupDANE(h *hostProbe) *smtp.Error {
	if !w.plan.DANE || h.s.IsLiteral() || w.opts.TLS == smtp.TLSNone || w.opts.TLS == "" {
		return nil
	}
	res := h.s.Result()
	t := time.Now()
	tlsa, err := dane.LookupTLSA(w.ctx, w.opts.Resolver, res.Host, res.Port)
	d, failure := NewDANEResult(tlsa, err)
	d.NextHop = cmp.Or(w.domain, res.Host)
	h.dane = d
	if n := len(res.Phases); n > 0 && res.Phases[n-1].Phase == smtp.PhaseResolve {
		res.Phases[n-1].Duration += time.Since(t)
	}
	if failure != nil {
		return failure
	}
	h.s.Notef("%s", daneSummary(tlsa))
	return nil
}

// dialog is one address of a host, ready to run (or failed already).
type dialog struct {
	s        *smtp.Session
	dane     *DANEResult
	prepared *smtp.Error // the host's preparation failed: nothing to dial
	res      *smtp.Result
}

// dialogs returns one dialog per address to probe: the prepared session
// itself for one address, else a session per address, each with its own
// Result (the resolve phase shared) and its own DANE verdict on the host's
// single TLSA lookup. Their transcript lines carry "host address".
func (h *hostProbe) dialogs() []*dialog {
	if h.err != nil {
		return []*dialog{{s: h.s, dane: h.dane, prepared: h.err}}
	}
	if len(h.addrs) <= 1 {
		return []*dialog{{s: h.s, dane: h.dane}}
	}
	host := h.s.Result().Host
	out := make([]*dialog, len(h.addrs))
	for i, a := range h.addrs {
		out[i] = &dialog{s: h.s.ForAddr(a, host+" "+a.String()), dane: h.dane.forAddr()}
	}
	return out
}

// run dials and talks, DANE judging the certificate when it applies.
func (d *dialog) run() *smtp.Result {
	if d.prepared != nil {
		d.res = d.s.Done(d.prepared)
		return d.res
	}
	d.dane.join(d.s)
	d.res = d.s.Done(d.s.Run())
	return d.res
}

// probeHost probes one host: one dialog, or one per address with
// addresses: all, concurrently. A refusal by the address policy is the
// only case with an error (the host's Err too), and nothing is dialled
// then.
func (w *walk) probeHost(host string, port uint16) ([]*dialog, *smtp.Error) {
	h := w.prepare(host, port, "")
	dialogs := h.dialogs()
	forEach(len(dialogs), func(i int) { dialogs[i].run() })
	if h.err != nil && h.err.Reason == smtp.ReasonPolicy {
		return dialogs, h.err
	}
	return dialogs, nil
}

// forEach runs f(0) to f(n-1) concurrently and waits for all.
func forEach(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}
