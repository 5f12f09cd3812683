package probe

import "github.com/smtp-exporter/smtp_exporter/smtp"

// The phases and reasons a probe adds to those of the SMTP dialog
// (smtp.Phases, smtp.Reasons): the steps around the dialogs that only this
// package combines.
const (
	// PhaseMTASTS is the MTA-STS policy's TXT lookup and HTTPS fetch, and
	// the judgement of an exchanger by the policy.
	PhaseMTASTS smtp.Phase = "mta_sts"
	// PhaseDelivery is the wait, after the message was accepted, until it
	// is in the mailbox.
	PhaseDelivery smtp.Phase = "delivery"

	// ReasonDANE fails a probe whose host has authenticated, usable TLSA
	// records (RFC 7672) when the certificate matches none of them; whose
	// host has authenticated TLSA records, usable or not, when the server
	// does not offer the STARTTLS they make mandatory; or whose secure
	// host's TLSA records cannot be determined (bogus: SERVFAIL).
	ReasonDANE smtp.Reason = "dane"
	// ReasonMTASTS fails a probe in MTA-STS enforce mode: an MX that no
	// policy pattern matches, or whose certificate does not validate for its
	// name; or a published policy that cannot be fetched.
	ReasonMTASTS smtp.Reason = "mta_sts"
	// ReasonAuth says the IMAP server refused the delivery check's login.
	ReasonAuth smtp.Reason = "auth"
)

// Phases lists every phase label value, in the order a probe reaches them.
var Phases = []smtp.Phase{smtp.PhaseResolve, PhaseMTASTS, smtp.PhaseConnect, smtp.PhaseTLS, smtp.PhaseBanner,
	smtp.PhaseEHLO, smtp.PhaseStartTLS, smtp.PhaseAuth, smtp.PhaseMail, smtp.PhaseRcpt, smtp.PhaseData,
	smtp.PhaseMessage, smtp.PhaseRset, smtp.PhaseQuit, PhaseDelivery}

// Reasons lists every reason label value.
var Reasons = append(append([]smtp.Reason(nil), smtp.Reasons...), ReasonAuth, ReasonDANE, ReasonMTASTS)

// reasonMeaning explains the reasons of this package.
var reasonMeaning = map[smtp.Reason]string{
	ReasonAuth:   "the mailbox server refused the delivery check's login (username or password)",
	ReasonDANE:   "the DNSSEC-signed host's TLSA records (DANE) could not be looked up, or the certificate matches none of them, or the server does not offer the STARTTLS they make mandatory",
	ReasonMTASTS: "the domain's MTA-STS policy in enforce mode refuses this MX (no mx pattern matches it, or its certificate does not validate for its name), or the published policy cannot be fetched",
}

// ExplainFailure says in one sentence why a probe failed: smtp's
// explanation, with this package's reasons explained too.
func ExplainFailure(e *smtp.Error) string {
	if e == nil {
		return ""
	}
	if m, ok := reasonMeaning[e.Reason]; ok {
		return smtp.ExplainFailureAs(e, m)
	}
	return smtp.ExplainFailure(e)
}
