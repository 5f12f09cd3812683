// Package smtp is one dialog with one SMTP server, done the way an expert
// with telnet does it, reporting everything it saw.
//
// Probe resolves a host, lets the caller's address policy vet every address
// the name resolves to, takes a slot of the caller's capacity, dials, waits
// for the 220 greeting without speaking, says EHLO (HELO when EHLO is
// refused with 500, 501, 502 or 550), optionally upgrades with STARTTLS (or
// starts with TLS: implicit, port 465), authenticates, runs MAIL FROM, RCPT
// TO and DATA, and always ends with QUIT, also after a failure. Everything
// obeys one deadline, the context's: name resolution, dialing, the TLS
// handshake, every read and write. Replies are read to their last line with
// a cap on line length (MaxLineLength) and on lines per reply
// (MaxReplyLines).
//
// Session is Probe in steps, for a caller that acts between them: Prepare
// (resolve and vet; every address with all), ForAddr for each address to
// probe, Run, Done; several Sessions of one probe share a Transcript.
// Certificate verification beyond WebPKI is the caller's: a TLSCheck decides
// (DANE, for one), or adds its verdict after the handshake, and may replace
// the failure of a server without STARTTLS.
//
// The API:
//   - Options (checked once by Validate, whose errors are *FieldError;
//     CheckHeloName and CheckMailbox check single values), Auth, TLSMode;
//   - Probe and its Result (PhaseResult, TLSState); Session, TLSCheck,
//     Transcript;
//   - Error, with its Phase and Reason (Phases and Reasons list the
//     dialog's label values; callers add their own), ErrPolicy for a
//     refusal by the address policy (PolicyError, Refusal);
//   - Reply, EnhancedCode, ReadReply and NewReader (a bounded reply reader),
//     ErrProtocol;
//   - Explain, ExplainFailure and ExplainFailureAs (plain-English
//     explanations);
//   - TranscriptLine and Direction (what Options.Transcript receives);
//   - SafeText, which escapes control, C1 and bidi characters in text a
//     server controls.
//
// What one probe keeps is capped whatever the server sends: at most 16
// lines and 1 KiB of text per reply (all lines are still read and parsed,
// within MaxLineLength and MaxReplyLines), 64 EHLO keywords, and 32 KiB of
// transcript text. Server text is made safe with SafeText before it is
// kept, and the password, in every encoding the probe sent, is replaced by
// <redacted> wherever a server echoes it.
//
// The package never looks up MX, TLSA or TXT records, never speaks HTTP or
// IMAP, and knows nothing of Prometheus, configuration files or logging:
// those are the callers' (packages probe, dane, mtasts, tlsrpt, delivery).
package smtp
