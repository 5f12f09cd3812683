package server

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

func TestHistoryReply(t *testing.T) {
	tests := []struct {
		name  string
		reply string // as the server sends it
		want  HistoryReply
	}{
		{"code, enhanced code and text", "554 5.7.1 client host blocked\r\n", HistoryReply{554, "5.7.1", "client host blocked"}},
		{"no enhanced code", "421 too busy\r\n", HistoryReply{421, "", "too busy"}},
		{"hash form", "421 #4.4.5 Too many connections\r\n", HistoryReply{421, "4.4.5", "Too many connections"}},
		{"lines joined, each line's code taken off", "550-5.1.1 no such user\r\n550 5.1.1 try another\r\n", HistoryReply{550, "5.1.1", "no such user / try another"}},
		{"code alone", "221 2.0.0\r\n", HistoryReply{221, "2.0.0", ""}},
		{"control characters escaped", "554 5.7.1 \x1b[31mred\x1b[0m\r\n", HistoryReply{554, "5.7.1", `\x1b[31mred\x1b[0m`}},
		{"bidi override escaped", "550 evil\u202etxt.exe\r\n", HistoryReply{550, "", `evil\u202etxt.exe`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := smtp.ReadReply(smtp.NewReader(strings.NewReader(tc.reply)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := historyReply(r); got != tc.want {
				t.Errorf("historyReply(%q) = %+v, want %+v", tc.reply, got, tc.want)
			}
		})
	}
	if got := historyReply(nil); got != (HistoryReply{}) {
		t.Errorf("no reply: %+v, want the zero reply", got)
	}
	t.Run("long text cut on a character boundary", func(t *testing.T) {
		for pad := range 4 {
			r := &smtp.Reply{Code: 550, Lines: []string{strings.Repeat("a", pad) + strings.Repeat("€", 100)}}
			got := historyReply(r)
			if len(got.Text) > MaxReplyText || !utf8.ValidString(got.Text) || !strings.HasSuffix(got.Text, "...") {
				t.Errorf("pad %d: %d bytes, valid UTF-8 %t: %q", pad, len(got.Text), utf8.ValidString(got.Text), got.Text)
			}
		}
	})
}
