// Package textsafe makes text that a remote peer controls (an SMTP or IMAP
// server, a DNS answer, an HTTPS policy server) safe to show in a terminal,
// a log line or a web page's text. It is shared by the protocol packages so
// that each escapes server text at the point where it becomes part of an
// error or a report. It never changes printable text, backslashes included.
package textsafe

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text makes text that a server controls safe to show in a terminal, a
// log line or a web page's text: every C0 control character but tab, DEL,
// the C1 controls (U+0080 to U+009F), the bidirectional formatting
// characters (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069),
// the line and paragraph separators (U+2028, U+2029) and bytes that are not
// valid UTF-8 are written as visible escapes: `\x1b`, `\u202e`, `\xff`.
// Everything else, backslashes included, is kept as it is. The smtp package applies it
// to reply text, transcript lines and error texts; other layers may apply it
// to anything else a server or a DNS answer controls.
func Text(s string) string {
	if IsSafe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x20 && r != '\t', r == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexDigit[s[i]>>4])
			b.WriteByte(hexDigit[s[i]&0xf])
		case unsafeRune(r):
			b.WriteString(`\u`)
			b.WriteString(strconv.FormatInt(int64(r)|0x10000, 16)[1:]) // four hex digits
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

const hexDigit = "0123456789abcdef"

// IsSafe reports whether s needs no escaping: printable ASCII and tab are
// checked byte by byte, anything else rune by rune.
func IsSafe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafeRune(r) {
			return false
		}
		i += size
	}
	return true
}

// unsafeRune reports the non-ASCII runes SafeText escapes.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // bidi marks
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	}
	return false
}

// Bytes is Text of a line as read from the network.
func Bytes(b []byte) string { return Text(string(b)) }

// Clip is Text of b's first n bytes, with "..." when b is longer.
func Clip(b []byte, n int) string {
	if len(b) > n {
		return Bytes(b[:n]) + "..."
	}
	return Bytes(b)
}

// Cut cuts s to at most n bytes without splitting a character.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Error returns err with its text made safe by clean (Text when clean is
// nil), or err itself when clean changes nothing. The result still matches,
// with errors.Is, what err matched (sentinels, context.DeadlineExceeded),
// but hands the original, with its raw text, to neither errors.As nor
// errors.Unwrap.
func Error(err error, clean func(string) string) error {
	if err == nil {
		return nil
	}
	if clean == nil {
		clean = Text
	}
	text := err.Error()
	if c := clean(text); c != text {
		return &cleanError{text: c, err: err}
	}
	return err
}

// cleanError is an error whose text was made safe.
type cleanError struct {
	text string
	err  error
}

func (e *cleanError) Error() string        { return e.text }
func (e *cleanError) Is(target error) bool { return errors.Is(e.err, target) }
