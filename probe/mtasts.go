package probe

import (
	"context"
	"errors"

	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// mtastsFailure classifies an error of Lookup as the probe's failure
// in phase mta_sts: nil for ErrNoPolicy (the domain has no policy, which is
// reported, not a failure), smtp.ReasonTimeout when the deadline passed,
// smtp.ReasonPolicy when CheckAddr refused the policy host, ReasonMTASTS for
// anything else (a published record whose policy cannot be fetched or
// parsed: a broken MTA-STS deployment).
func mtastsFailure(err error) *smtp.Error {
	switch {
	case err == nil || errors.Is(err, mtasts.ErrNoPolicy):
		return nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return &smtp.Error{Phase: PhaseMTASTS, Reason: smtp.ReasonTimeout, Err: err}
	case errors.Is(err, mtasts.ErrRefused):
		return &smtp.Error{Phase: PhaseMTASTS, Reason: smtp.ReasonPolicy, Err: err}
	}
	return &smtp.Error{Phase: PhaseMTASTS, Reason: ReasonMTASTS, Err: err}
}

// checkMXFailure is p.CheckMX as the probe's failure: ReasonMTASTS in phase
// mta_sts when the policy is enforced and host fails it; nil otherwise (in
// testing mode the mismatch is only reported).
func checkMXFailure(p *mtasts.Policy, mxHost string, certVerified bool) *smtp.Error {
	if err := p.CheckMX(mxHost, certVerified); err != nil && p.Enforced() {
		return &smtp.Error{Phase: PhaseMTASTS, Reason: ReasonMTASTS, Err: err}
	}
	return nil
}
