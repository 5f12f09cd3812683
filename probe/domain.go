package probe

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
	"github.com/smtp-exporter/smtp_exporter/tlsrpt"
)

// This file runs a domain's MTA-STS and TLS-RPT lookups inside probeMX.

// domainChecks are the MTA-STS and TLS-RPT lookups of one probeMX call,
// running while the MX records are looked up.
type domainChecks struct {
	wg       sync.WaitGroup
	domain   string
	sts      *mtasts.Result
	stsErr   error
	stsAsked bool
	rpt      *tlsrpt.Result
	rptErr   error
	rptAsked bool
}

// startDomainChecks starts the lookups the plan asks for, each within half
// of the time left before the deadline, so that a policy server that never
// answers fails the MTA-STS lookup (ReasonTimeout, reported) while the
// exchangers still have the other half.
func (w *walk) startDomainChecks(domain string) *domainChecks {
	ctx, opts := w.ctx, w.opts
	c := &domainChecks{domain: domain}
	if w.plan.MTASTS != nil {
		c.stsAsked = true
		stsOpts := *w.plan.MTASTS
		if stsOpts.CheckAddr == nil {
			stsOpts.CheckAddr = opts.CheckAddr
		}
		if stsOpts.Resolver == "" {
			stsOpts.Resolver = opts.Resolver
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			// The exchangers are probed once the policy is known: a policy
			// server that never answers must leave them time.
			ctx, cancel := halfDeadline(ctx)
			defer cancel()
			c.sts, c.stsErr = mtasts.Lookup(ctx, domain, stsOpts)
		}()
	}
	if w.plan.TLSRPT {
		c.rptAsked = true
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			ctx, cancel := halfDeadline(ctx)
			defer cancel()
			c.rpt, c.rptErr = tlsrpt.Lookup(ctx, opts.Resolver, domain)
		}()
	}
	return c
}

// wait waits for the lookups and records them in res, with notes. A refusal
// of the MTA-STS policy host by the address policy sets res.Err (wrapping
// ErrPolicy): nothing is to be dialled.
func (c *domainChecks) wait(tr *smtp.Transcript, res *MXResult) {
	c.wg.Wait()
	if c.stsAsked {
		failure := mtastsFailure(c.stsErr)
		switch {
		case failure != nil && failure.Reason == smtp.ReasonPolicy:
			failure.Err = smtp.Refusal(failure.Err)
			res.MTASTSErr, res.Err = failure, failure
			tr.Notef("MTA-STS: %v", failure.Err)
		case failure != nil:
			res.MTASTSErr = failure
			tr.Notef("MTA-STS lookup failed (reported; the exchangers are probed without a policy): %v", failure.Err)
		case c.stsErr != nil: // mtasts.ErrNoPolicy
			tr.Notef("MTA-STS: %v", c.stsErr)
		default:
			res.MTASTS = c.sts
			p := c.sts.Policy
			tr.Notef("MTA-STS: policy id %s from %s (%s) in %s: mode %s, max_age %d, mx %s",
				c.sts.Record.ID, c.sts.PolicyURL, c.sts.Addr, c.sts.Duration.Round(time.Microsecond), p.Mode, p.MaxAge, strings.Join(p.MX, ", "))
		}
	}
	if c.rptAsked {
		switch {
		case c.rptErr != nil:
			res.TLSRPTErr = c.rptErr
			tr.Notef("TLS-RPT lookup failed (reported, not a failure): %v", c.rptErr)
		case c.rpt.Record != nil:
			res.TLSRPT = c.rpt
			tr.Notef("TLS-RPT: _smtp._tls.%s holds a valid record: rua %s", c.domain, strings.Join(c.rpt.Record.RUA, ", "))
		case c.rpt.Err != nil:
			res.TLSRPT = c.rpt
			tr.Notef("TLS-RPT: no valid record at _smtp._tls.%s: %v", c.domain, c.rpt.Err)
		default:
			res.TLSRPT = c.rpt
			tr.Notef("TLS-RPT: no record at _smtp._tls.%s", c.domain)
		}
	}
}

// judgeMTASTS checks the probed exchanger name by the domain's policy and
// returns whether it passes the policy's checks (an mx pattern matches it
// and its certificate validated for its name), whatever the mode. It fails
// the probe (phase mta_sts, reason mta_sts) in enforce mode when the
// exchanger does not pass, unless the probe already failed. In testing mode
// the mismatch is noted.
func judgeMTASTS(s *smtp.Session, policy *mtasts.Policy, name string) bool {
	res := s.Result()
	verified := res.TLS != nil && res.TLS.Verified
	matches := policy.Matches(name)
	s.Notef("MTA-STS: mx %s matches the policy: %t, certificate valid for its name: %t (mode %s)",
		name, matches, verified, policy.Mode)
	err := policy.CheckMX(name, verified)
	if err == nil {
		return matches && verified
	}
	if !policy.Enforced() {
		s.Notef("MTA-STS (mode %s, reported only): %v", policy.Mode, err)
		return false
	}
	if res.Err != nil {
		return false // the probe failed already
	}
	res.Err = checkMXFailure(policy, name, verified)
	s.Notef("probe failed: %s", res.Err)
	return false
}

// halfDeadline bounds ctx by half of the time left before its deadline.
func halfDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
}
