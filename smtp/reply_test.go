package smtp

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Reply
		wantErr error // matched with errors.Is
	}{
		{"single line", "220 mx.example.org ESMTP\r\n", &Reply{Code: 220, Lines: []string{"mx.example.org ESMTP"}}, nil},
		{"bare LF", "250 ok\n", &Reply{Code: 250, Lines: []string{"ok"}}, nil},
		{"code only", "250\r\n", &Reply{Code: 250, Lines: []string{""}}, nil},
		{"multi-line", "250-mx\r\n250-SIZE 100\r\n250 HELP\r\n", &Reply{Code: 250, Lines: []string{"mx", "SIZE 100", "HELP"}}, nil},
		{"enhanced", "550 5.1.1 no such user\r\n", &Reply{Code: 550, Enhanced: EnhancedCode{5, 1, 1}, Lines: []string{"5.1.1 no such user"}}, nil},
		{"enhanced with hash", "421 #4.4.5 too many connections\r\n", &Reply{Code: 421, Enhanced: EnhancedCode{4, 4, 5}, Lines: []string{"#4.4.5 too many connections"}}, nil},
		{"enhanced multi-line", "452-#4.3.1 Insufficient\r\n452 #4.3.1 system storage\r\n", &Reply{Code: 452, Enhanced: EnhancedCode{4, 3, 1}, Lines: []string{"#4.3.1 Insufficient", "#4.3.1 system storage"}}, nil},
		{"enhanced on the last line only (go-smtp)", "550-Mailbox unavailable\r\n550-try later\r\n550 5.1.1 no such user\r\n", &Reply{Code: 550, Enhanced: EnhancedCode{5, 1, 1}, Lines: []string{"Mailbox unavailable", "try later", "5.1.1 no such user"}}, nil},
		{"enhanced on a middle line is not read", "550-a\r\n550-5.1.1 b\r\n550 c\r\n", &Reply{Code: 550, Lines: []string{"a", "5.1.1 b", "c"}}, nil},
		{"enhanced three-digit detail", "538 #5.7.11 Encryption required\r\n", &Reply{Code: 538, Enhanced: EnhancedCode{5, 7, 11}, Lines: []string{"#5.7.11 Encryption required"}}, nil},
		{"enhanced class mismatch ignored", "250 5.1.1 odd\r\n", &Reply{Code: 250, Lines: []string{"5.1.1 odd"}}, nil},
		{"appliance 4.x.2 is no code", "421 #4.x.2 Too many messages\r\n", &Reply{Code: 421, Lines: []string{"#4.x.2 Too many messages"}}, nil},
		{"control chars escaped", "250 a\x00b\x1bc\r\n", &Reply{Code: 250, Lines: []string{`a\x00b\x1bc`}}, nil},
		{"invalid utf8 escaped", "250 \xff\xfe\r\n", &Reply{Code: 250, Lines: []string{`\xff\xfe`}}, nil},
		{"http", "HTTP/1.1 400 Bad Request\r\n", nil, ErrProtocol},
		{"ssh", "SSH-2.0-OpenSSH_9.2\r\n", nil, ErrProtocol},
		{"code out of range", "199 nope\r\n", nil, ErrProtocol},
		{"second digit out of range", "260 nope\r\n", nil, ErrProtocol},
		{"bad separator", "250_ok\r\n", nil, ErrProtocol},
		{"changing code", "250-a\r\n251 b\r\n", nil, ErrProtocol},
		{"short", "25\r\n", nil, ErrProtocol},
		{"empty line", "\r\n", nil, ErrProtocol},
		{"eof mid-reply", "250-a\r\n250-b", nil, io.EOF},
		{"eof", "", nil, io.EOF},
		{"line at the cap", "250 " + strings.Repeat("a", MaxLineLength-4) + "\r\n", &Reply{Code: 250, Lines: []string{strings.Repeat("a", MaxLineLength-4)}}, nil},
		{"line over the cap", "250 " + strings.Repeat("a", MaxLineLength) + "\r\n", nil, ErrProtocol},
		{"endless line", "250 " + strings.Repeat("a", 10*MaxLineLength), nil, ErrProtocol},
		{"lines at the cap", strings.Repeat("250-x\r\n", MaxReplyLines-1) + "250 x\r\n", nil, nil},
		{"lines over the cap", strings.Repeat("250-x\r\n", MaxReplyLines) + "250 x\r\n", nil, ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadReply(NewReader(strings.NewReader(tc.in)), nil)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestReadReplyLineCallbackSeesRawLines(t *testing.T) {
	var lines []string
	_, err := ReadReply(NewReader(strings.NewReader("250-a\r\n250 b\n")), func(l []byte) { lines = append(lines, string(l)) })
	if err != nil || !reflect.DeepEqual(lines, []string{"250-a", "250 b"}) {
		t.Fatalf("lines = %q, err = %v", lines, err)
	}
}

// TestReadReplySafeLinesShareText: a probe that keeps a transcript reads
// each line made safe once, and takes the reply's text from it; the reply
// must be the one read without a transcript, and the transcript's lines
// each line's SafeText, whatever the server sends.
func TestReadReplySafeLinesShareText(t *testing.T) {
	tests := []struct{ name, in string }{
		{"ehlo", "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"},
		{"code only", "250\r\n"},
		{"code and separator only", "250 \r\n"},
		{"control chars", "250 a\x00b\x1bc\r\n"},
		{"invalid utf8 after the separator", "250-\xff\xfe\r\n250 \xc3\r\n"},
		{"bidi override", "220 mx \u202egro.elpmaxe\r\n"},
		{"more lines than are kept", strings.Repeat("250-x\r\n", 2*maxKeptLines) + "250 5.0.0 end\r\n"},
		{"more bytes than are kept", "250-" + strings.Repeat("a", 3*maxKeptBytes/4) + "\r\n250 " + strings.Repeat("\x1b", maxKeptBytes/2) + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			how := replyReading{keepLines: maxKeptLines, keepBytes: maxKeptBytes}
			want, err := readReply(NewReader(strings.NewReader(tc.in)), how)
			if err != nil {
				t.Fatalf("without a transcript: %v", err)
			}
			var safe []string
			how.onSafeLine = func(l string) { safe = append(safe, l) }
			got, err := readReply(NewReader(strings.NewReader(tc.in)), how)
			if err != nil {
				t.Fatalf("with a transcript: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("reply %#v, want %#v", got, want)
			}
			raw := strings.Split(strings.TrimSuffix(tc.in, "\r\n"), "\r\n")
			if len(safe) != len(raw) {
				t.Fatalf("%d transcript lines, want %d", len(safe), len(raw))
			}
			for i, l := range raw {
				if safe[i] != SafeText(l) {
					t.Errorf("transcript line %d = %q, want %q", i, safe[i], SafeText(l))
				}
			}
		})
	}
}

// TestReadReplyDoesNotReadPastLimit checks that an over-long line is refused
// after at most one buffer of input, not after reading it all.
func TestReadReplyDoesNotReadPastLimit(t *testing.T) {
	src := &countingReader{r: strings.NewReader("250 " + strings.Repeat("a", 1<<20))}
	if _, err := ReadReply(NewReader(src), nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("err = %v", err)
	}
	if src.n > MaxLineLength+2 {
		t.Errorf("read %d bytes, want at most %d", src.n, MaxLineLength+2)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestParseEnhancedCode(t *testing.T) {
	tests := []struct {
		code int
		text string
		want string
	}{
		{250, "2.0.0 ok", "2.0.0"},
		{421, "#4.4.5 too many", "4.4.5"},
		{550, "5.1.10 null MX", "5.1.10"},
		{550, "5.123.456", "5.123.456"},
		{550, "5.1234.1 x", ""},
		{550, "5.01.1 x", ""},
		{550, "5.1.1x", ""},
		{550, "5.1.", ""},
		{550, "5..1", ""},
		{550, "4.1.1 wrong class", ""},
		{354, "3.0.0 no class 3", ""},
		{550, "##5.1.1", ""},
		{550, "", ""},
		{550, "5.7.1\tx", "5.7.1"},
	}
	for _, tc := range tests {
		if got := parseEnhancedCode(tc.code, tc.text).String(); got != tc.want {
			t.Errorf("parseEnhancedCode(%d, %q) = %q, want %q", tc.code, tc.text, got, tc.want)
		}
	}
}

// FuzzReadReply drives the reply parser with arbitrary bytes: it must never
// panic, never exceed its limits, and return either an error or a reply whose
// fields are consistent.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"220 mx ESMTP\r\n", "250-a\r\n250 b\r\n", "421 #4.4.5 x\r\n", "250\n", "\r\n", "550 5.1.10 y\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(strings.NewReader(string(data)))
		for i := 0; i < 4; i++ {
			reply, err := ReadReply(r, nil)
			if err != nil {
				return
			}
			if reply.Code < 200 || reply.Code > 559 || len(reply.Lines) == 0 || len(reply.Lines) > MaxReplyLines {
				t.Fatalf("inconsistent reply %#v", reply)
			}
			for _, l := range reply.Lines {
				if len(l) > 4*MaxLineLength || !isSafe(l) || strings.ContainsAny(l, "\r\n\x00") {
					t.Fatalf("bad line %q", l)
				}
			}
			if e := reply.Enhanced; !e.IsZero() && e.Class != reply.Class() {
				t.Fatalf("enhanced %s does not match %d", e, reply.Code)
			}
			_ = Explain(reply)
		}
		// What a probe keeps of the same bytes is capped.
		r = NewReader(strings.NewReader(string(data)))
		for i := 0; i < 4; i++ {
			reply, err := readReply(r, replyReading{keepLines: maxKeptLines, keepBytes: maxKeptBytes})
			if err != nil {
				return
			}
			text := 0
			for _, l := range reply.Lines {
				text += len(l)
			}
			if len(reply.Lines) > maxKeptLines+1 || text > maxKeptBytes+64 {
				t.Fatalf("kept %d lines, %d bytes", len(reply.Lines), text)
			}
		}
	})
}
