package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

// Limits on what the client reads from a server. A reply that exceeds either
// ends the probe at once with reason "protocol"; nothing past the limit is
// read into memory.
const (
	// MaxLineLength is the longest reply line accepted, in bytes, without
	// its line ending. RFC 5321 allows 512; real servers sometimes exceed it.
	MaxLineLength = 4096
	// MaxReplyLines is the most lines one (multi-line) reply may have.
	MaxReplyLines = 128
)

// EnhancedCode is an RFC 3463 enhanced status code, class.subject.detail.
// The zero value means the reply carried none.
type EnhancedCode struct {
	Class, Subject, Detail int
}

// IsZero reports whether the reply carried no enhanced status code.
func (e EnhancedCode) IsZero() bool { return e.Class == 0 }

// String formats the code as "4.4.5", or "" for the zero value.
func (e EnhancedCode) String() string {
	if e.IsZero() {
		return ""
	}
	return strconv.Itoa(e.Class) + "." + strconv.Itoa(e.Subject) + "." + strconv.Itoa(e.Detail)
}

// Reply is one complete (possibly multi-line) SMTP reply.
type Reply struct {
	// Code is the three-digit reply code.
	Code int
	// Enhanced is the RFC 3463 code found at the start of the first line's
	// text or, failing that, of the last line's, written "4.4.5" or
	// "#4.4.5"; zero when there is none.
	Enhanced EnhancedCode
	// Lines holds the text of each line after the code and separator.
	Lines []string
}

// Class is the first digit of the reply code: 2, 3, 4 or 5.
func (r *Reply) Class() int { return r.Code / 100 }

// Text is the reply text, lines joined by newlines.
func (r *Reply) Text() string { return strings.Join(r.Lines, "\n") }

// String formats the reply on one line, as "550 5.1.1 no such user".
func (r *Reply) String() string {
	if r == nil {
		return ""
	}
	return strconv.Itoa(r.Code) + " " + strings.Join(r.Lines, " / ")
}

// ErrProtocol is wrapped by every error that reports a line which is not a
// valid SMTP reply, or a reply over the length limits.
var ErrProtocol = errors.New("smtp protocol violation")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// ReadReply reads one complete reply from r: every line of a multi-line
// reply, up to the last. Lines may end in CRLF or a bare LF. r must have a
// buffer of at least MaxLineLength+2 bytes (see NewReader) for the line
// limit to be MaxLineLength. onLine, when not nil, sees each raw line
// without its ending, before it is parsed. The text of each line is made
// safe with SafeText; every line is kept.
func ReadReply(r *bufio.Reader, onLine func(line []byte)) (*Reply, error) {
	// SafeText writes a byte as at most four: every line fits.
	return readReply(r, replyReading{keepLines: MaxReplyLines, keepBytes: 4 * MaxReplyLines * MaxLineLength, onLine: onLine})
}

// What a probe keeps of one reply, whatever the server sends: at most
// maxKeptLines lines and maxKeptBytes bytes of text. The lines past either
// are still read (up to MaxReplyLines) and seen by the reading's onText.
const (
	maxKeptLines = 16
	maxKeptBytes = 1 << 10
)

// replyReading says how readReply reads one reply.
type replyReading struct {
	keepLines, keepBytes int
	// clean, when not nil, is applied to each line's safe text before it
	// is kept or seen by onText (the probe scrubs secrets with it).
	clean func(string) string
	// onLine sees each raw line before it is parsed; onSafeLine sees it
	// made safe (SafeText), and the reply's text then shares that string;
	// onText sees the text of each line, kept or not, with its index.
	onLine     func(line []byte)
	onSafeLine func(line string)
	onText     func(i int, text string)
}

func readReply(r *bufio.Reader, how replyReading) (*Reply, error) {
	var reply *Reply
	// The kept lines gather here and are copied once, at their number.
	var buf [maxKeptLines]string
	lines := buf[:0]
	kept, omitted := 0, 0
	var last string
	for n := 0; ; n++ {
		if n == MaxReplyLines {
			return nil, protocolErrorf("reply has more than %d lines", MaxReplyLines)
		}
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		if how.onLine != nil {
			how.onLine(line)
		}
		safe := ""
		if how.onSafeLine != nil {
			safe = safeBytes(line)
			how.onSafeLine(safe)
		}
		code, more, ok := parseReplyLine(line)
		if !ok {
			shown := safeBytes(line)
			if how.clean != nil {
				shown = how.clean(shown)
			}
			if len(shown) > 40 {
				shown = cutUTF8(shown, 40) + "..."
			}
			return nil, protocolErrorf("not an SMTP reply: \"%s\"", shown)
		}
		if reply == nil {
			reply = &Reply{Code: code}
		} else if code != reply.Code {
			return nil, protocolErrorf("multi-line reply changes code from %d to %d", reply.Code, code)
		}
		text := ""
		switch {
		case len(line) <= 4:
		case safe != "":
			text = safe[4:] // code and separator are ASCII, which SafeText keeps as they are
		default:
			text = safeBytes(line[4:])
		}
		if how.clean != nil {
			text = how.clean(text)
		}
		if how.onText != nil {
			how.onText(n, text)
		}
		last = text
		if len(lines) < how.keepLines && kept < how.keepBytes {
			if room := how.keepBytes - kept; len(text) > room {
				text = cutUTF8(text, room) + "..."
			}
			lines = append(lines, text)
			kept += len(text)
		} else {
			omitted++
		}
		if !more {
			break
		}
	}
	reply.Lines = slices.Clone(lines)
	// The code is on the first line, or (as go-smtp writes it) on the last
	// line only.
	reply.Enhanced = parseEnhancedCode(reply.Code, reply.Lines[0])
	if reply.Enhanced.IsZero() && len(reply.Lines)+omitted > 1 {
		reply.Enhanced = parseEnhancedCode(reply.Code, last)
	}
	if omitted > 0 {
		reply.Lines = append(reply.Lines, fmt.Sprintf("[%d more lines not kept]", omitted))
	}
	return reply, nil
}

// cutUTF8 cuts s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string { return textsafe.Cut(s, n) }

// NewReader returns a buffered reader sized so that ReadReply enforces
// MaxLineLength.
func NewReader(r interface{ Read([]byte) (int, error) }) *bufio.Reader {
	return bufio.NewReaderSize(r, MaxLineLength+2)
}

// readers keeps the probes' reply readers (4 KiB buffers) between probes.
var readers = sync.Pool{New: func() any { return NewReader(nil) }}

// getReader is NewReader from the pool; putReader gives it back once the
// dialog is over (nothing read from it is kept: replies are copied).
func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// readLine returns one line without its LF or CRLF ending. The slice is only
// valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, protocolErrorf("reply line longer than %d bytes", MaxLineLength)
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > MaxLineLength {
		return nil, protocolErrorf("reply line longer than %d bytes", MaxLineLength)
	}
	return line, nil
}

// parseReplyLine parses one reply line (without its ending): the code and
// whether more lines follow ("250-..."); the text is what follows the
// fourth byte. The code must be three digits as RFC 5321 section 4.2
// defines them: 2-5, then 0-5, then 0-9; ok is false when the line is not a
// reply line.
func parseReplyLine(line []byte) (code int, more, ok bool) {
	if len(line) < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' {
		return 0, false, false
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, true
	}
	switch line[3] {
	case ' ':
	case '-':
		more = true
	default:
		return 0, false, false
	}
	return code, more, true
}

// parseEnhancedCode finds the RFC 3463 enhanced status code at the start of a
// reply's text, written "4.4.5" or, as some appliances write it, "#4.4.5".
// The code's class must match the reply code's first digit (2, 4 or 5);
// subject and detail have one to three digits. It returns the zero value when
// there is no such code.
func parseEnhancedCode(code int, text string) EnhancedCode {
	s := strings.TrimPrefix(text, "#")
	class := code / 100
	if len(s) < 5 || int(s[0]-'0') != class || (class != 2 && class != 4 && class != 5) || s[1] != '.' {
		return EnhancedCode{}
	}
	subject, rest, ok := codeNumber(s[2:])
	if !ok || len(rest) < 2 || rest[0] != '.' {
		return EnhancedCode{}
	}
	detail, rest, ok := codeNumber(rest[1:])
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return EnhancedCode{}
	}
	return EnhancedCode{Class: class, Subject: subject, Detail: detail}
}

// codeNumber reads 1 to 3 digits without a leading zero (a lone "0" is fine).
func codeNumber(s string) (int, string, bool) {
	n, i := 0, 0
	for i < len(s) && i < 4 && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	if i == 0 || i > 3 || (i > 1 && s[0] == '0') {
		return 0, s, false
	}
	return n, s[i:], true
}
