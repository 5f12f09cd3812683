package smtp

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
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
func SafeText(s string) string {
	if isSafe(s) {
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

// isSafe reports whether s needs no escaping: printable ASCII and tab are
// checked byte by byte, anything else rune by rune.
func isSafe(s string) bool {
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

// safeBytes is SafeText of a line as read from the network.
func safeBytes(b []byte) string {
	return SafeText(string(b))
}

// cleanError is an error whose text was made safe (SafeText) and cleared of
// secrets. It still matches, with errors.Is, what the original matched
// (ErrProtocol, ErrPolicy, os.ErrDeadlineExceeded, ...), but does not hand
// the original, with its raw text, to errors.As or errors.Unwrap.
type cleanError struct {
	text string
	err  error
}

func (e *cleanError) Error() string        { return e.text }
func (e *cleanError) Is(target error) bool { return errors.Is(e.err, target) }

// cleanErr returns err, or a cleanError when clean changes its text.
func cleanErr(err error, clean func(string) string) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if c := clean(text); c != text {
		return &cleanError{text: c, err: err}
	}
	return err
}

// clip is SafeText of b's first n bytes, with "..." when b is longer.
func clip(b []byte, n int) string {
	if len(b) > n {
		return safeBytes(b[:n]) + "..."
	}
	return safeBytes(b)
}
