package probe

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// Hooks are what a caller adds to a plan for one probe.
type Hooks struct {
	// CheckAddr vets every address before anything is dialled (the probe
	// policy of /probe); nil for static targets and the probe command.
	CheckAddr func(host string, addr netip.Addr) error
	// Admit takes a capacity slot before each connection (see
	// smtp.Options.Admit).
	Admit func(ctx context.Context) (release func(), err error)
	// Transcript receives every line of the dialog, serialised by smtp.
	Transcript func(smtp.TranscriptLine)
}

// Run probes t within ctx's deadline (the caller sets it: the plan's
// timeout, capped by the scrape's) and returns what the metrics and the
// report show. A policy refusal is returned as the error, wrapping
// smtp.ErrPolicy; nothing was dialled then.
func Run(ctx context.Context, t Target, h Hooks) (*Outcome, error) {
	opts := t.Plan.Options
	if h.CheckAddr != nil || h.Transcript != nil || h.Admit != nil {
		o := *opts
		o.CheckAddr, o.Transcript, o.Admit = h.CheckAddr, h.Transcript, h.Admit
		opts = &o
	}
	o := &Outcome{Target: t}
	if mx := t.Plan.MX; mx != nil {
		res, err := smtp.ProbeMX(ctx, t.Host, t.Plan.Port, opts, mx.MaxHosts)
		o.fromMX(res, mx.Success)
		return o, policyError(err)
	}
	if t.Plan.AllAddresses {
		results, err := smtp.ProbeHost(ctx, t.Host, t.Port, opts)
		o.fromResults(results, t.Plan.Success)
		return o, policyError(err)
	}
	start := time.Now()
	res, err := smtp.Probe(ctx, t.Host, t.Port, opts)
	var delivery *smtp.DeliveryResult
	if dc := t.Plan.Delivery; dc != nil && err == nil && res.MessageID != "" {
		delivery = checkDelivery(ctx, dc, res, start, h.Transcript)
	}
	o.fromResult(res)
	o.Hosts[0].Delivery = delivery
	return o, policyError(err)
}

// checkDelivery waits for the accepted message in the mailbox, as the
// phase delivery of res: its failure becomes the probe's.
func checkDelivery(ctx context.Context, dc *smtp.DeliveryCheck, res *smtp.Result, start time.Time, tr func(smtp.TranscriptLine)) *smtp.DeliveryResult {
	d, err := smtp.CheckDelivery(ctx, dc, smtp.DeliveryRequest{MessageID: res.MessageID, AcceptedAt: res.AcceptedAt, Start: start, Transcript: tr})
	res.Phases = append(res.Phases, smtp.PhaseResult{Phase: smtp.PhaseDelivery, Duration: d.Duration})
	res.Duration = time.Since(start)
	if err != nil {
		res.Err = err
	}
	return d
}

// policyError keeps only the error that means "refused, nothing dialled".
func policyError(err error) error {
	if errors.Is(err, smtp.ErrPolicy) {
		return err
	}
	return nil
}

// NotStarted is the outcome of a probe that never started: every capacity
// slot was busy until the deadline.
func NotStarted(t Target) *Outcome {
	err := &smtp.Error{Phase: smtp.PhaseResolve, Reason: smtp.ReasonTimeout, Err: errNotStarted}
	o := &Outcome{Target: t}
	if t.Plan.MX != nil {
		o.fromMX(&smtp.MXResult{Domain: t.Host, Err: err}, t.Plan.MX.Success)
	} else {
		o.fromResult(&smtp.Result{Host: t.Host, Port: t.Port, Err: err})
	}
	return o
}

var errNotStarted = errors.New("the deadline passed before this probe could start (every slot was busy)")

// Deadline is the plan's timeout, capped by limit when it is positive.
func (p *Plan) Deadline(limit time.Duration) time.Duration {
	if limit > 0 && limit < p.Timeout {
		return limit
	}
	return p.Timeout
}
