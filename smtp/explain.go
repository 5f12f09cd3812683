package smtp

import (
	"strconv"
	"strings"
)

// replyCodes gives the meaning of the basic reply codes, from RFC 5321
// section 4.2 and the SMTP extensions that added codes (RFC 3207 STARTTLS,
// RFC 4954 AUTH, RFC 7504 null MX / no-service).
var replyCodes = map[int]string{
	211: "system status",
	214: "help message",
	220: "the service is ready",
	221: "the server is closing the connection (normal end of session)",
	235: "authentication succeeded",
	250: "the command was accepted",
	251: "the recipient is not local; the server will forward the mail",
	252: "the server cannot verify the user but will accept the message",
	334: "the server waits for the next authentication step",
	354: "the server waits for the message content, ended by a line with a single dot",
	421: "the service is not available and the server is closing the connection; try again later",
	432: "a password transition is needed",
	450: "the mailbox is unavailable for now (busy, or blocked by policy); try again later",
	451: "the server had a local error while processing the command; try again later",
	452: "the server lacks storage or resources, or there are too many recipients; try again later",
	454: "a temporary failure: TLS or authentication is not available right now",
	455: "the server cannot accommodate the parameters right now",
	500: "syntax error: the command was not recognised (or the line was too long)",
	501: "syntax error in the command's parameters or arguments",
	502: "the command is not implemented",
	503: "bad sequence of commands: something had to come first",
	504: "a command parameter is not implemented",
	521: "this host does not accept mail",
	523: "the message is larger than the recipient accepts",
	530: "authentication or STARTTLS is required before this command",
	534: "the authentication mechanism is too weak",
	535: "authentication failed: the credentials are invalid",
	538: "encryption is required for the requested authentication mechanism",
	550: "the mailbox is unavailable (not found, no access, or refused by policy)",
	551: "the user is not local; the server will not forward",
	552: "the message exceeds a storage or size limit",
	553: "the mailbox name is not allowed (bad address syntax)",
	554: "the transaction failed (or, as a greeting, the server offers no SMTP service to you)",
	555: "MAIL FROM or RCPT TO parameters were not recognised",
	556: "the domain does not accept mail",
}

// enhancedCodes gives the meaning of the subject.detail part of RFC 3463
// enhanced status codes, after the IANA "Enumerated Status Codes" registry
// (RFC 3463, 3886, 4468, 4865, 4954, 5248, 6710, 7293, 7372, 7505, 8098).
var enhancedCodes = map[[2]int]string{
	{0, 0}:  "other or undefined status",
	{1, 0}:  "other address status",
	{1, 1}:  "bad destination mailbox address: the mailbox does not exist",
	{1, 2}:  "bad destination system address: the domain does not exist or accepts no mail",
	{1, 3}:  "bad destination mailbox address syntax",
	{1, 4}:  "the destination mailbox address is ambiguous",
	{1, 5}:  "destination address valid",
	{1, 6}:  "the destination mailbox has moved, with no forwarding address",
	{1, 7}:  "bad sender mailbox address syntax",
	{1, 8}:  "bad sender system address: the sender's domain does not resolve",
	{1, 9}:  "message relayed to a non-compliant mailer",
	{1, 10}: "the recipient's domain has a null MX: it accepts no mail",
	{2, 0}:  "other or undefined mailbox status",
	{2, 1}:  "the mailbox is disabled and accepts no messages",
	{2, 2}:  "the mailbox is full",
	{2, 3}:  "the message is longer than an administrative limit",
	{2, 4}:  "mailing list expansion problem",
	{3, 0}:  "the mail system has an undefined problem (a server error)",
	{3, 1}:  "the mail system is full: the queue or disk is out of space",
	{3, 2}:  "the system is not accepting network messages",
	{3, 3}:  "the system is not capable of the selected features",
	{3, 4}:  "the message is too big for the system",
	{3, 5}:  "the system is incorrectly configured",
	{3, 6}:  "the requested priority was changed",
	{4, 0}:  "other or undefined network or routing status",
	{4, 1}:  "no answer from the next host",
	{4, 2}:  "bad connection to the next host",
	{4, 3}:  "directory server (e.g. DNS) failure",
	{4, 4}:  "unable to route the message",
	{4, 5}:  "the mail system is congested (e.g. too many connections or sessions)",
	{4, 6}:  "a routing loop was detected",
	{4, 7}:  "delivery time expired",
	{5, 0}:  "other or undefined protocol status (e.g. bad command sequence)",
	{5, 1}:  "invalid command (unknown, or not allowed now)",
	{5, 2}:  "syntax error",
	{5, 3}:  "too many recipients",
	{5, 4}:  "invalid command arguments",
	{5, 5}:  "wrong protocol version",
	{5, 6}:  "an authentication exchange line is too long",
	{6, 0}:  "other or undefined media error",
	{6, 1}:  "media not supported",
	{6, 2}:  "conversion required and prohibited",
	{6, 3}:  "conversion required but not supported",
	{6, 4}:  "conversion with loss performed",
	{6, 5}:  "conversion failed",
	{6, 6}:  "message content not available",
	{6, 7}:  "non-ASCII addresses not permitted for that sender or recipient",
	{6, 8}:  "a UTF-8 reply is required but the client did not allow it",
	{6, 9}:  "UTF-8 header message cannot be transferred to one or more recipients",
	{7, 0}:  "other or undefined security status (e.g. STARTTLS required first)",
	{7, 1}:  "delivery not authorized, message refused (e.g. relaying denied, sender blocked)",
	{7, 2}:  "mailing list expansion prohibited",
	{7, 3}:  "security conversion required but not possible",
	{7, 4}:  "security features not supported",
	{7, 5}:  "cryptographic failure",
	{7, 6}:  "cryptographic algorithm not supported",
	{7, 7}:  "message integrity failure",
	{7, 8}:  "authentication credentials invalid",
	{7, 9}:  "the authentication mechanism is too weak",
	{7, 10}: "encryption needed",
	{7, 11}: "encryption required for the requested authentication mechanism",
	{7, 12}: "a password transition is needed",
	{7, 13}: "the user account is disabled",
	{7, 14}: "a trust relationship is required",
	{7, 15}: "the priority level is too low",
	{7, 16}: "the message is too big for the specified priority",
	{7, 17}: "the mailbox owner has changed",
	{7, 18}: "the domain owner has changed",
	{7, 19}: "the RRVS test cannot be completed",
	{7, 20}: "no passing DKIM signature found",
	{7, 21}: "no acceptable DKIM signature found",
	{7, 22}: "no valid author-matched DKIM signature found",
	{7, 23}: "SPF validation failed",
	{7, 24}: "SPF validation error",
	{7, 25}: "reverse DNS validation failed",
	{7, 26}: "multiple authentication checks failed",
	{7, 27}: "the sender's domain has a null MX",
	{7, 28}: "mail flood detected",
	{7, 29}: "ARC validation failure",
	{7, 30}: "REQUIRETLS support required",
}

var classMeaning = map[int]string{
	2: "success",
	3: "intermediate: the server waits for more",
	4: "temporary failure: the server asks to try again later",
	5: "permanent failure: retrying the same way will not help",
}

// Explain turns a reply into one plain-English sentence: what the code means
// (RFC 5321 and its extensions), what the enhanced status code means (the
// IANA registry), and what the server said. For example:
//
//	421 4.4.5: temporary failure: the server asks to try again later. 421: the
//	service is not available ...; 4.4.5: the mail system is congested (e.g. too
//	many connections or sessions). The server said: "too many connections from your host".
func Explain(r *Reply) string {
	if r == nil {
		return "no reply was received"
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if !r.Enhanced.IsZero() {
		b.WriteString(" " + r.Enhanced.String())
	}
	b.WriteString(": ")
	if m, ok := classMeaning[r.Class()]; ok {
		b.WriteString(m)
	}
	b.WriteString(". ")
	if m, ok := replyCodes[r.Code]; ok {
		b.WriteString(strconv.Itoa(r.Code) + ": " + m)
	} else {
		b.WriteString(strconv.Itoa(r.Code) + ": a code RFC 5321 does not define")
	}
	if !r.Enhanced.IsZero() {
		b.WriteString("; " + r.Enhanced.String() + ": ")
		if m, ok := enhancedCodes[[2]int{r.Enhanced.Subject, r.Enhanced.Detail}]; ok {
			b.WriteString(m)
		} else if m, ok := enhancedCodes[[2]int{r.Enhanced.Subject, 0}]; ok {
			b.WriteString("an unregistered code in the class of: " + m)
		} else {
			b.WriteString("an unregistered code")
		}
	}
	b.WriteString(".")
	if text := serverText(r); text != "" {
		b.WriteString(" The server said: \"" + text + "\".")
	}
	return b.String()
}

// serverText is the reply's own words without the enhanced codes at the
// start of its lines, clipped.
func serverText(r *Reply) string {
	words := make([]string, 0, len(r.Lines))
	for _, line := range r.Lines {
		if e := parseEnhancedCode(r.Code, line); !e.IsZero() {
			line = strings.TrimPrefix(line, "#")
			line = line[strings.IndexAny(line+" ", " \t"):]
		}
		if line = strings.TrimSpace(line); line != "" {
			words = append(words, line)
		}
	}
	text := strings.Join(words, " ")
	if len(text) > 200 {
		text = cutUTF8(text, 200) + "..."
	}
	return text
}

// ExplainFailure says in one sentence why a probe failed, quoting the reply
// that decided it (Explain tells what that reply means).
func ExplainFailure(e *Error) string {
	if e == nil {
		return ""
	}
	return ExplainFailureAs(e, reasonMeaning[e.Reason])
}

// ExplainFailureAs is ExplainFailure with the meaning of e's reason given
// by the caller, for reasons that are not the dialog's own (Reasons).
func ExplainFailureAs(e *Error, meaning string) string {
	s := "failed in phase " + string(e.Phase) + " (" + string(e.Reason) + ")"
	if meaning != "" {
		s += ": " + meaning
	}
	if e.Reply != nil {
		s += ": " + e.Reply.String()
	}
	if e.Err != nil {
		s += ": " + SafeText(e.Err.Error())
	}
	return s
}

var reasonMeaning = map[Reason]string{
	ReasonResolve:     "the name did not resolve to a usable address",
	ReasonConnect:     "the TCP connection could not be made",
	ReasonTimeout:     "the server did not answer within the probe's timeout",
	ReasonTLS:         "the TLS handshake or the certificate check failed",
	ReasonClosed:      "the server closed the connection in the middle of the dialog",
	ReasonProtocol:    "the server sent something that is not a valid SMTP reply",
	Reason4xx:         "the server answered with a temporary failure",
	Reason5xx:         "the server answered with a permanent failure",
	ReasonUnsupported: "the server does not offer an extension the module needs",
	ReasonExpectation: "the server answered with another reply class than the module expects there",
	ReasonPolicy:      "the exporter's probe_policy does not allow this address",
	ReasonConfig:      "the probe could not be prepared",
	ReasonNullMX:      "the domain publishes a null MX: it accepts no mail",
	ReasonOverload:    "the exporter had no capacity left for another connection",
	ReasonToken:       "no OAuth 2.0 bearer token could be had (the token endpoint refused or failed, or the token file is unreadable)",
}
