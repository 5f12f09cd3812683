package probe

import (
	"slices"
	"strconv"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/delivery"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
	"github.com/smtp-exporter/smtp_exporter/tlsrpt"
)

// Outcome is one probe as the metrics and the report see it: one host, or
// every exchanger of a domain.
type Outcome struct {
	Target   Target
	Success  bool
	Duration time.Duration
	// DNS is the time name resolution took (the MX lookup with mx_lookup).
	DNS time.Duration
	// MXFound is how many exchangers the MX lookup returned; -1 when the
	// target is not a domain.
	MXFound int
	// MXAuthenticated is true when the resolver authenticated the MX answer
	// or its denial (DNSSEC, the AD bit); false for a failed lookup.
	MXAuthenticated bool
	// Hosts has one row per host probed (per address with addresses: all).
	// An MX probe whose lookup failed has one row with empty Name and
	// Address holding the lookup's failure, so every per-host series keeps
	// the same labels; so has a failed MTA-STS policy fetch.
	Hosts []Host
	// ByAddress is true with addresses: all: every row has an address.
	ByAddress bool
	// MTASTS is the domain's MTA-STS policy lookup (mta_sts), nil when the
	// domain has none or it was not looked up.
	MTASTS *mtasts.Result
	// TLSRPT is the domain's TLS-RPT lookup, nil when not made or failed.
	TLSRPT *tlsrpt.Result
}

// Host is the probe of one host, summarised.
type Host struct {
	// Name and Preference identify an exchanger; empty for a single-host
	// probe and for the row of a failed MX lookup.
	Name, Preference string
	// Address is the address dialled, with addresses: all.
	Address string
	// Extensions are the EHLO keywords of Result, sorted.
	Extensions []string
	Result     *smtp.Result
	// DANE is the host's DANE outcome, with dane: true.
	DANE *DANEResult
	// Phases holds each phase reached once, in dialog order: a phase with
	// several replies (RCPT per recipient, EHLO around STARTTLS, HELO after
	// EHLO) reports its total time and its last reply.
	Phases []PhaseSummary
	// Delivery is the delivery check's, when the module has one and the
	// message was accepted.
	Delivery *delivery.Result
	// MTASTSCompliant is the exchanger's verdict by the domain's MTA-STS
	// policy, whatever its mode (MXHost.MTASTSCompliant); nil without one.
	MTASTSCompliant *bool
}

// PhaseSummary is one phase of a host's dialog.
type PhaseSummary struct {
	Phase    smtp.Phase
	Duration time.Duration
	Reply    *smtp.Reply
}

// IsMX reports whether the outcome is of an mx_lookup probe.
func (o *Outcome) IsMX() bool { return o.MXFound >= 0 }

// Failures lists each host's failure, for logs.
func (o *Outcome) Failures() []*smtp.Error {
	var errs []*smtp.Error
	for _, h := range o.Hosts {
		if h.Result.Err != nil {
			errs = append(errs, h.Result.Err)
		}
	}
	return errs
}

func newHost(name, preference string, res *smtp.Result, d *DANEResult, byAddress bool) Host {
	h := Host{Name: name, Preference: preference, Result: res, DANE: d}
	if len(res.Extensions) > 0 {
		h.Extensions = make([]string, 0, len(res.Extensions))
	}
	if len(res.Phases) > 0 {
		h.Phases = make([]PhaseSummary, 0, len(res.Phases))
	}
	for k := range res.Extensions {
		h.Extensions = append(h.Extensions, k)
	}
	slices.Sort(h.Extensions)
	if byAddress && res.Addr.IsValid() {
		h.Address = res.Addr.Addr().String()
	}
	for _, p := range res.Phases {
		i := slices.IndexFunc(h.Phases, func(s PhaseSummary) bool { return s.Phase == p.Phase })
		if i < 0 {
			h.Phases = append(h.Phases, PhaseSummary{Phase: p.Phase})
			i = len(h.Phases) - 1
		}
		h.Phases[i].Duration += p.Duration
		if p.Reply != nil {
			h.Phases[i].Reply = p.Reply
		}
	}
	return h
}

func (o *Outcome) fromResult(res *smtp.Result, d *DANEResult) {
	o.Success, o.Duration, o.DNS, o.MXFound = res.Success(), res.Duration, res.DNSDuration, -1
	o.Hosts = []Host{newHost("", "", res, d, false)}
}

// fromDialogs is a host probed on every address, judged by mode.
func (o *Outcome) fromDialogs(dialogs []*dialog, mode config.MXSuccess) {
	o.MXFound, o.ByAddress = -1, true
	all, anyOK := true, false
	for _, d := range dialogs {
		r := d.res
		o.Duration = max(o.Duration, r.Duration)
		o.DNS = max(o.DNS, r.DNSDuration)
		all = all && r.Success()
		anyOK = anyOK || r.Success()
		o.Hosts = append(o.Hosts, newHost("", "", r, d.dane, true))
	}
	o.Success = len(dialogs) > 0 && (all || (mode == config.MXSuccessAny && anyOK))
}

func (o *Outcome) fromMX(mx *MXResult, mode config.MXSuccess) {
	o.Success, o.Duration, o.DNS, o.MXFound = mx.Success(mode), mx.Duration, mx.LookupDuration, mx.Found
	o.MXAuthenticated = mx.Authenticated
	o.ByAddress = o.Target.Plan.AllAddresses
	o.MTASTS, o.TLSRPT = mx.MTASTS, mx.TLSRPT
	if mx.Err != nil {
		o.Hosts = []Host{newHost("", "", &smtp.Result{Host: mx.Domain, Err: mx.Err}, nil, false)}
		return
	}
	for _, h := range mx.Hosts {
		row := newHost(h.Name, strconv.Itoa(int(h.Preference)), h.Result, h.DANE, o.ByAddress)
		row.MTASTSCompliant = h.MTASTSCompliant
		o.Hosts = append(o.Hosts, row)
	}
	// A policy the module asked for that could not be had fails the probe,
	// in a row of its own (the exchangers' rows stay as they were).
	if mx.MTASTSErr != nil {
		o.Success = false
		o.Hosts = append(o.Hosts, newHost("", "", &smtp.Result{Host: mx.Domain, Err: mx.MTASTSErr}, nil, false))
	}
}
