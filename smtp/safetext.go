package smtp

import (
	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

// SafeText makes text that a server controls safe to show in a terminal, a
// log line or a web page's text: every C0 control character but tab, DEL,
// the C1 controls (U+0080 to U+009F), the bidirectional formatting
// characters (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069),
// the line and paragraph separators (U+2028, U+2029) and bytes that are not
// valid UTF-8 are written as visible escapes: `\x1b`, `\u202e`, `\xff`.
// Everything else, backslashes included, is kept as it is. Probe applies it
// to reply text, transcript lines and error texts; other layers may apply it
// to anything else a server or a DNS answer controls.
func SafeText(s string) string { return textsafe.Text(s) }

// safeBytes is SafeText of a line as read from the network.
func safeBytes(b []byte) string { return textsafe.Bytes(b) }

// cleanErr returns err with its text made safe by clean (SafeText and the
// secrets scrubbed): see textsafe.Error.
func cleanErr(err error, clean func(string) string) error { return textsafe.Error(err, clean) }
