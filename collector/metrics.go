package collector

import (
	"slices"
	"strconv"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// outcome is one probe as the metrics see it: a single host, or every
// exchanger of a domain.
type outcome struct {
	success  bool
	duration time.Duration
	dns      time.Duration
	// mx is set for mx_lookup probes; lookupErr is the lookup's own failure.
	mx        *smtp.MXResult
	lookupErr *smtp.Error
	hosts     []hostOutcome
}

// hostOutcome is the probe of one host, summarised for the metrics, and its
// reply counters.
type hostOutcome struct {
	name, preference string // mx_lookup only
	res              *smtp.Result
	counts           ReplyCounts
	// phases holds each phase reached once, in dialog order: a phase with
	// several replies (RCPT per recipient, EHLO around STARTTLS, HELO after
	// EHLO) reports its total time and its last reply.
	phases     []phaseSummary
	extensions []string // sorted
}

type phaseSummary struct {
	phase    smtp.Phase
	duration time.Duration
	reply    *smtp.Reply
}

func newHostOutcome(res *smtp.Result) hostOutcome {
	h := hostOutcome{res: res, extensions: sortedKeys(res.Extensions)}
	for _, p := range res.Phases {
		i := slices.IndexFunc(h.phases, func(s phaseSummary) bool { return s.phase == p.Phase })
		if i < 0 {
			h.phases = append(h.phases, phaseSummary{phase: p.Phase})
			i = len(h.phases) - 1
		}
		h.phases[i].duration += p.Duration
		if p.Reply != nil {
			h.phases[i].reply = p.Reply
		}
	}
	return h
}

// newOutcome wraps a single-host probe.
func newOutcome(res *smtp.Result) *outcome {
	return &outcome{success: res.Success(), duration: res.Duration, dns: res.DNSDuration, hosts: []hostOutcome{newHostOutcome(res)}}
}

// newMXOutcome wraps an MX probe, judged by mode (mx_success).
func newMXOutcome(mx *smtp.MXResult, mode string) *outcome {
	o := &outcome{success: mx.Success(smtp.MXSuccess(mode)), duration: mx.Duration, dns: mx.LookupDuration, mx: mx, lookupErr: mx.Err}
	for _, m := range mx.Hosts {
		h := newHostOutcome(m.Result)
		h.name, h.preference = m.Name, strconv.Itoa(int(m.Preference))
		o.hosts = append(o.hosts, h)
	}
	return o
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
