// Package smtp runs one SMTP probe the way an expert with telnet would, and
// reports everything it saw.
//
// Probe dials a host (after the caller's address policy has vetted every
// address the name resolves to), waits for the 220 greeting without
// speaking, says EHLO (HELO when EHLO is refused with 500, 501, 502 or 550),
// optionally upgrades with STARTTLS, authenticates, runs MAIL FROM, RCPT TO
// and DATA, and always ends with QUIT, also after a failure. Everything obeys
// one deadline, the context's: name resolution, dialing, the TLS handshake,
// every read and write. Replies are read to their last line with a cap on
// line length (MaxLineLength) and on lines per reply (MaxReplyLines).
//
// The Result holds every phase reached, with its duration and reply, the
// EHLO extensions, and the TLS state, filled up to the point of failure; a
// failure is an *Error naming the phase, the Reason, and the reply that
// decided it. Explain turns a reply into a plain-English sentence.
//
// The package knows nothing of Prometheus, configuration files or logging:
// the collector package turns Results into metrics.
package smtp
