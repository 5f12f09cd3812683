// Package smtp runs one SMTP probe the way an expert with telnet would, and
// reports everything it saw.
//
// Probe resolves a host, lets the caller's address policy vet every address
// the name resolves to, takes a slot of the caller's capacity, dials, waits
// for the 220 greeting without speaking, says EHLO (HELO when EHLO is
// refused with 500, 501, 502 or 550), optionally upgrades with STARTTLS,
// authenticates, runs MAIL FROM, RCPT TO and DATA, and always ends with
// QUIT, also after a failure. ProbeMX does the same for every mail exchanger
// of a domain, concurrently, after all of their addresses passed the policy.
// Everything obeys one deadline, the context's: name resolution, dialing,
// the TLS handshake, every read and write. Replies are read to their last
// line with a cap on line length (MaxLineLength) and on lines per reply
// (MaxReplyLines).
//
// Beyond one path to one address, the options follow every path a sender
// may take: AllAddresses probes every A and AAAA address of the host
// (ProbeHost) or of each exchanger (ProbeMX), each as its own dialog; DANE
// checks the certificate against the host's DNSSEC-authenticated TLSA
// records (RFC 7672), which then replace WebPKI and make STARTTLS
// mandatory; MTASTS fetches the domain's MTA-STS policy (RFC 8461) while
// the MX records are looked up and judges every exchanger by it; TLSRPT
// reports the domain's TLS-RPT record (RFC 8460).
//
// The library API:
//   - Options (checked once by Validate, whose errors are *FieldError;
//     CheckHeloName and CheckMailbox check single values), Auth, TLSMode;
//   - Probe and its Result (PhaseResult, TLSState, DANEResult), ProbeHost
//     (one Result per address), ProbeMX and its MXResult (MXHost,
//     MXSuccess, MTASTSResult, TLSRPTResult);
//   - the DANE, MTA-STS and TLS-RPT pieces on their own: LookupTLSA,
//     VerifyDANE, LookupMTASTS, ParseMTASTSPolicy, LookupTLSRPT;
//   - Error, with its Phase and Reason (Phases and Reasons list the label
//     values), ErrPolicy for a refusal by the address policy;
//   - Reply, EnhancedCode, ReadReply and NewReader (a bounded reply reader),
//     ErrProtocol;
//   - Explain and ExplainFailure (plain-English explanations);
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
// The Result holds every phase reached, with its duration and reply, the
// EHLO extensions, and the TLS state, filled up to the point of failure; a
// failure is an *Error naming the phase, the Reason, and the reply that
// decided it.
//
// The package knows nothing of Prometheus, configuration files or logging.
package smtp
