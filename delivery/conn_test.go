package delivery

import (
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

func TestIMAPLogLines(t *testing.T) {
	const secret = `s3cr"et`
	tests := []struct {
		name   string
		writes []struct {
			dir  Direction
			data string
		}
		want []string // "C: text" / "S: text"
	}{
		{name: "lines split across writes and joined in one",
			writes: []struct {
				dir  Direction
				data string
			}{{Server, "* OK [CAPA"}, {Server, "BILITY IMAP4rev1] hi\r\n* 3 EX"}, {Server, "ISTS\r\n"}},
			want: []string{"S: * OK [CAPABILITY IMAP4rev1] hi", "S: * 3 EXISTS"}},
		{name: "LOGIN with quoted password",
			writes: []struct {
				dir  Direction
				data string
			}{{Client, `T1 LOGIN "user" "s3cr\"et"` + "\r\n"}, {Server, "T1 OK done\r\n"}, {Client, "T2 SELECT INBOX\r\n"}},
			want: []string{"C: T1 LOGIN <redacted>", "S: T1 OK done", "C: T2 SELECT INBOX"}},
		{name: "LOGIN with the password as a literal",
			writes: []struct {
				dir  Direction
				data string
			}{{Client, "T1 login user {7}\r\n"}, {Server, "+ go on\r\n"}, {Client, secret + "\r\n"},
				{Server, "T1 NO [AUTHENTICATIONFAILED] no\r\n"}, {Client, "T2 LOGOUT\r\n"}},
			want: []string{"C: T1 LOGIN <redacted>", "S: + go on", "C: <redacted>", "S: T1 NO [AUTHENTICATIONFAILED] no", "C: T2 LOGOUT"}},
		{name: "AUTHENTICATE and its responses",
			writes: []struct {
				dir  Direction
				data string
			}{{Client, "T1 AUTHENTICATE PLAIN\r\n"}, {Server, "+ \r\n"}, {Client, "AHVzZXIAczNjcidldA==\r\n"}, {Server, "T1 OK\r\n"}},
			want: []string{"C: T1 AUTHENTICATE <redacted>", "S: + ", "C: <redacted>", "S: T1 OK"}},
		{name: "echoed secret scrubbed, control characters made safe",
			writes: []struct {
				dir  Direction
				data string
			}{{Server, "* BAD you said " + secret + "\x1b[31m\r\n"}},
			want: []string{"S: * BAD you said <redacted>" + textsafe.Clip([]byte("\x1b[31m"), 100)}},
		{name: "endless line: its start only",
			writes: []struct {
				dir  Direction
				data string
			}{{Server, strings.Repeat("x", imapLineMax-3) + secret + strings.Repeat("y", 100)}, {Server, "z\r\n* OK next\r\n"}},
			want: []string{"S: " + strings.Repeat("x", imapLineShown) + "...", "S: * OK next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			l := newIMAPLog(func(dir Direction, text string) { got = append(got, string(rune(dir))+": "+text) })
			l.addSecret(secret)
			for _, w := range tt.writes {
				l.data(w.dir, []byte(w.data))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, line := range got {
				if strings.Contains(line, "cr\"e") || strings.Contains(line, `cr\"e`) {
					t.Errorf("a piece of the secret shows: %q", line)
				}
				if strings.ContainsAny(line, "\x1b\r\n") {
					t.Errorf("a control character shows: %q", line)
				}
			}
		})
	}
}

func TestIsStaleProbeMessage(t *testing.T) {
	cutoff := time.Unix(1_700_000_000, 0)
	const ours = "<1700000100.0123456789abcdef01234567@probe.test>"
	now := cutoff.Add(time.Hour)
	deadline := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	tests := []struct {
		name, mailer, id string
		deadline         string // X-Smtp-Exporter-Deadline
		want             bool
	}{
		// Without a deadline (an exporter from before it): by the time in
		// the Message-ID.
		{"earlier probe", "smtp_exporter", "<1699999000.0123456789abcdef01234567@probe.test>", "", true},
		{"earlier probe, other host", "smtp_exporter", "<1699999000.aaaaaaaaaaaaaaaaaaaaaaaa@mx.example.org>", "", true},
		{"ours", "smtp_exporter", ours, "", false},
		{"a probe still waiting", "smtp_exporter", "<1700000000.0123456789abcdef01234567@probe.test>", "", false},
		{"not from the exporter", "mutt", "<1699999000.0123456789abcdef01234567@probe.test>", "", false},
		{"no X-Mailer", "", "<1699999000.0123456789abcdef01234567@probe.test>", "", false},
		{"another form of Message-ID", "smtp_exporter", "<1699999000.xyz@probe.test>", "", false},
		{"upper-case hex", "smtp_exporter", "<1699999000.0123456789ABCDEF01234567@probe.test>", "", false},
		{"no brackets", "smtp_exporter", "1699999000.0123456789abcdef01234567@probe.test", "", false},
		// With a deadline, it alone decides, whenever the message was sent.
		{"deadline passed", "smtp_exporter", "<1700000000.0123456789abcdef01234567@probe.test>", deadline(-2 * time.Minute), true},
		{"deadline passed within the margin", "smtp_exporter", "<1699999000.0123456789abcdef01234567@probe.test>", deadline(-30 * time.Second), false},
		{"a long wait still running", "smtp_exporter", "<1699999000.0123456789abcdef01234567@probe.test>", deadline(time.Hour), false},
		{"ours, deadline passed", "smtp_exporter", ours, deadline(-time.Hour), false},
		{"not from the exporter, deadline passed", "mutt", "<1699999000.0123456789abcdef01234567@probe.test>", deadline(-time.Hour), false},
		{"unreadable deadline: by the Message-ID", "smtp_exporter", "<1699999000.0123456789abcdef01234567@probe.test>", "soon", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mail.Header{"Message-Id": {tt.id}}
			if tt.mailer != "" {
				h["X-Mailer"] = []string{tt.mailer}
			}
			if tt.deadline != "" {
				h[deadlineHeader] = []string{tt.deadline}
			}
			if got := isStaleProbeMessage(h, ours, cutoff, now); got != tt.want {
				t.Errorf("got %t, want %t", got, tt.want)
			}
		})
	}
}

// The form of the probe's test message (smtp's testMessage, checked there
// by TestTestMessageForm) is what the delivery check recognises.
func TestProbeMessageRecognised(t *testing.T) {
	msg := "Message-ID: <1767225600.0123456789abcdef01234567@probe.test>\r\nX-Mailer: smtp_exporter\r\n" +
		"X-Smtp-Exporter-Deadline: 1767225610\r\nSubject: smtp_exporter probe\r\n\r\nbody\r\n"
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !probeMessageID.MatchString(m.Header.Get("Message-Id")) || m.Header.Get("X-Mailer") != probeMailer {
		t.Fatalf("the probe's message form is not recognised")
	}
	sent := time.Unix(1767225600, 0)
	if !isStaleProbeMessage(m.Header, "<other>", sent.Add(time.Hour), sent.Add(time.Hour)) {
		t.Errorf("the probe's message is not recognised as a probe's")
	}
	if isStaleProbeMessage(m.Header, "<other>", sent.Add(time.Hour), sent.Add(time.Minute)) {
		t.Errorf("the probe's deadline (%s) is not read", m.Header.Get(deadlineHeader))
	}
}

// FuzzIMAPLog feeds server and client bytes, in pieces, to the transcript:
// no line shows the secret or a control character, and none is unbounded.
func FuzzIMAPLog(f *testing.F) {
	const secret = "Fuzz-S3cret"
	f.Add([]byte("* OK ready\r\nT1 LOGIN u "+secret+"\r\n"), uint8(3), true)
	f.Add([]byte("T1 NO bad "+secret+"\r\n* 1 EXISTS\r\n"), uint8(7), false)
	f.Add([]byte(strings.Repeat("a", imapLineMax+10)+secret+"\r\n"), uint8(200), false)
	f.Fuzz(func(t *testing.T, data []byte, piece uint8, client bool) {
		var lines []string
		l := newIMAPLog(func(_ Direction, text string) { lines = append(lines, text) })
		l.addSecret(secret)
		dir := Server
		if client {
			dir = Client
		}
		n := int(piece) + 1
		for len(data) > 0 {
			k := min(n, len(data))
			l.data(dir, data[:k])
			data = data[k:]
		}
		for _, text := range lines {
			if strings.Contains(text, secret) {
				t.Errorf("the secret shows: %q", text)
			}
			if strings.ContainsAny(text, "\r\n\x00\x1b") {
				t.Errorf("a control character shows: %q", text)
			}
			if len(text) > 4*imapLineShown+len("...") {
				t.Errorf("a line of %d bytes", len(text))
			}
		}
	})
}
