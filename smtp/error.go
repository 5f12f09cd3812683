package smtp

import (
	"fmt"
	"strings"
)

// Phase names one step of the dialog. The values are the "phase" label values
// of the exporter's metrics.
type Phase string

// The phases, in dialog order.
const (
	PhaseResolve  Phase = "resolve"
	PhaseConnect  Phase = "connect"
	PhaseTLS      Phase = "tls" // implicit TLS (SMTPS) handshake
	PhaseBanner   Phase = "banner"
	PhaseEHLO     Phase = "ehlo" // HELO after a refused EHLO counts here too
	PhaseStartTLS Phase = "starttls"
	PhaseAuth     Phase = "auth"
	PhaseMail     Phase = "mail"
	PhaseRcpt     Phase = "rcpt"
	PhaseData     Phase = "data"    // the DATA command and its 354
	PhaseMessage  Phase = "message" // the content and the reply to the final "."
	PhaseRset     Phase = "rset"    // ends a transaction stopped early by an expected reply
	PhaseQuit     Phase = "quit"
)

// Phases lists every phase of a dialog in dialog order. Callers that
// combine dialogs with other steps (an MTA-STS fetch, a delivery check) add
// phases of their own; Phase is the type of the whole vocabulary.
var Phases = []Phase{PhaseResolve, PhaseConnect, PhaseTLS, PhaseBanner, PhaseEHLO, PhaseStartTLS,
	PhaseAuth, PhaseMail, PhaseRcpt, PhaseData, PhaseMessage, PhaseRset, PhaseQuit}

// Reason says why a probe failed. The values are the "reason" label values of
// the exporter's metrics.
type Reason string

// The failure reasons.
const (
	ReasonResolve     Reason = "resolve"     // name resolution failed or found no usable address
	ReasonConnect     Reason = "connect"     // the TCP connection was refused or unreachable
	ReasonTimeout     Reason = "timeout"     // the probe's deadline passed
	ReasonTLS         Reason = "tls"         // handshake or certificate verification failed
	ReasonClosed      Reason = "closed"      // the peer closed or reset the connection mid-dialog
	ReasonProtocol    Reason = "protocol"    // not a valid SMTP reply, or over the length limits
	Reason4xx         Reason = "reply_4xx"   // a transient negative reply
	Reason5xx         Reason = "reply_5xx"   // a permanent negative reply
	ReasonUnsupported Reason = "unsupported" // a needed extension (STARTTLS, AUTH, a mechanism) is not offered
	ReasonExpectation Reason = "expectation" // a reply of another class than the module expects there
	ReasonPolicy      Reason = "policy"      // the caller's address policy refused the address; nothing was dialled
	ReasonConfig      Reason = "config"      // the probe could not be prepared (e.g. an unreadable password_file)
	ReasonNullMX      Reason = "null_mx"     // the domain publishes a null MX (RFC 7505): it accepts no mail
	ReasonOverload    Reason = "overload"    // the caller's admission (Options.Admit) refused the connection
	ReasonToken       Reason = "token"       // no bearer token for XOAUTH2 or OAUTHBEARER (Auth.Token failed); AUTH was not sent
)

// Reasons lists every failure reason of a dialog. Callers add reasons of
// their own (a TLSCheck's, say), with ExplainFailureAs to explain them.
var Reasons = []Reason{ReasonResolve, ReasonConnect, ReasonTimeout, ReasonTLS, ReasonClosed, ReasonProtocol,
	Reason4xx, Reason5xx, ReasonUnsupported, ReasonExpectation, ReasonPolicy, ReasonConfig, ReasonNullMX, ReasonOverload, ReasonToken}

// Error is the failure of a probe: the phase it failed in, why, and the reply
// that decided it when one came.
type Error struct {
	Phase  Phase
	Reason Reason
	// Reply is the reply that failed the probe; nil when none came (a
	// timeout, a closed connection, a TLS failure).
	Reply *Reply
	// Err is the underlying error, if any.
	Err error
}

// Error formats the failure as "rcpt: reply_5xx: 550 5.1.1 no such user"
// ("connect: ..." once where the reason is the phase's name), made safe
// with SafeText.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Phase))
	if string(e.Reason) != string(e.Phase) { // "connect: connect: ..." says it twice
		b.WriteString(": " + string(e.Reason))
	}
	if e.Reply != nil {
		b.WriteString(": ")
		b.WriteString(e.Reply.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return SafeText(b.String())
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// replyError classifies a reply of the wrong class.
func replyError(phase Phase, r *Reply, want int) *Error {
	switch r.Class() {
	case 4:
		return &Error{Phase: phase, Reason: Reason4xx, Reply: r}
	case 5:
		return &Error{Phase: phase, Reason: Reason5xx, Reply: r}
	default:
		return &Error{Phase: phase, Reason: ReasonProtocol, Reply: r,
			Err: fmt.Errorf("unexpected %dxx reply where %dxx belongs", r.Class(), want)}
	}
}
