package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/smtp-exporter/smtp_exporter/delivery"
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
	// Transcript receives every line of the probe, serialised by smtp.
	Transcript func(smtp.TranscriptLine)
}

// Run probes t within ctx's deadline (the caller sets it: the plan's
// timeout, capped by the scrape's) and returns what the metrics and the
// report show. A policy refusal is returned as the error, wrapping
// smtp.ErrPolicy; nothing was dialled then.
//
// It is the whole story of a probe, top to bottom: a domain (mx_lookup) is
// looked up with its MTA-STS policy and TLS-RPT record beside it, and every
// exchanger probed (probeMX); a host is resolved, its TLSA records looked
// up, and each address to probe gets its dialog, DANE judging the
// certificate where it applies (probeHost); a message accepted on a single
// host is then looked for in the mailbox (checkDelivery).
func Run(ctx context.Context, t Target, h Hooks) (*Outcome, error) {
	start := time.Now()
	ctx, cancel := smtp.WithDefaultDeadline(ctx)
	defer cancel()
	opts := t.Plan.Options
	if h.CheckAddr != nil || h.Admit != nil {
		o := *opts
		o.CheckAddr, o.Admit = h.CheckAddr, h.Admit
		opts = &o
	}
	w := &walk{ctx: ctx, plan: t.Plan, opts: opts, tr: smtp.NewTranscript(h.Transcript, start)}
	o := &Outcome{Target: t}
	if mx := t.Plan.MX; mx != nil {
		res, err := w.probeMX(t.Host, t.Plan.Port, mx.MaxHosts)
		o.fromMX(res, mx.Success)
		return o, policyError(err)
	}
	dialogs, refused := w.probeHost(t.Host, t.Port)
	if t.Plan.AllAddresses {
		o.fromDialogs(dialogs, t.Plan.Success)
	} else {
		d := dialogs[0]
		var dres *delivery.Result
		if dc := t.Plan.Delivery; dc != nil && d.res.Err == nil && d.res.MessageID != "" {
			dres = w.checkDelivery(dc, d.res, start)
		}
		o.fromResult(d.res, d.dane)
		o.Hosts[0].Delivery = dres
	}
	if refused != nil {
		return o, refused
	}
	return o, nil
}

// checkDelivery waits for the accepted message in the mailbox, as the
// phase delivery of res: its failure becomes the probe's. Its transcript
// lines carry "imap ADDR", so that they read apart from the dialog's.
func (w *walk) checkDelivery(dc *delivery.Check, res *smtp.Result, start time.Time) *delivery.Result {
	// The IMAP session is a connection like the dialog's: it takes a slot.
	if admit := w.opts.Admit; admit != nil {
		t := time.Now()
		release, err := admit(w.ctx)
		if err != nil {
			reason := smtp.ReasonOverload
			if w.ctx.Err() != nil {
				reason = smtp.ReasonTimeout
			}
			res.Phases = append(res.Phases, smtp.PhaseResult{Phase: PhaseDelivery, Duration: time.Since(t)})
			res.Duration = time.Since(start)
			res.Err = &smtp.Error{Phase: PhaseDelivery, Reason: reason, Err: fmt.Errorf("no capacity for the imap connection: %w", err)}
			w.tr.Notef("delivery check not started: %v", res.Err.Err)
			return nil
		}
		if release != nil {
			defer release()
		}
	}
	var tr func(delivery.Direction, string)
	if w.tr != nil {
		host := "imap " + dc.Addr
		tr = func(dir delivery.Direction, text string) { w.tr.Emit(host, smtp.Direction(dir), text) }
	}
	d, err := delivery.Wait(w.ctx, dc, delivery.Request{MessageID: res.MessageID, AcceptedAt: res.AcceptedAt, Transcript: tr})
	res.Phases = append(res.Phases, smtp.PhaseResult{Phase: PhaseDelivery, Duration: d.Duration})
	res.Duration = time.Since(start)
	if err != nil {
		res.Err = &smtp.Error{Phase: PhaseDelivery, Reason: smtp.Reason(err.Reason), Err: err.Err}
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
		o.fromMX(&MXResult{Domain: t.Host, Err: err}, t.Plan.MX.Success)
	} else {
		o.fromResult(&smtp.Result{Host: t.Host, Port: t.Port, Err: err}, nil)
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
