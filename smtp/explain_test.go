package smtp

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestExplainSeedReplies covers every reply in the appliance guide the
// project grew from (../shared/seed): each gets a sentence that says what the
// code and the enhanced code mean, and quotes the server.
func TestExplainSeedReplies(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"421 #4.4.5 Too many TLS sessions at this time", []string{"421 4.4.5", "temporary failure", "congested", "Too many TLS sessions"}},
		{"421 #4.4.5 Too many connections from your host.", []string{"congested", "too many connections", "from your host"}},
		{"421 #4.x.2 Too many messages for this session", []string{"421:", "not available", "Too many messages"}},
		{"421 <hostname> Service not available, closing transmission channel", []string{"closing the connection"}},
		{"421 Exceeded allowable connection time", []string{"421:"}},
		{"451 #4.3.0 Server error", []string{"4.3.0", "undefined problem"}},
		{"452 #4.3.1 Queue full", []string{"4.3.1", "mail system is full"}},
		{"452 #4.5.3 Too many recipients", []string{"4.5.3", "too many recipients"}},
		{"454 TLS not available due to temporary reason", []string{"TLS or authentication is not available"}},
		{"500 #5.5.1 command not recognized", []string{"5.5.1", "invalid command", "permanent failure"}},
		{"500 Line too long", []string{"not recognised"}},
		{"501 #5.0.0 EHLO requires domain address", []string{"5.0.0", "syntax error in the command's parameters"}},
		{"501 #5.5.2 Syntax error XXX", []string{"5.5.2", "syntax error"}},
		{"501 #5.5.4 Invalid arguments to AUTH command", []string{"5.5.4", "invalid command arguments"}},
		{"503 #5.3.3 AUTH not available", []string{"5.3.3", "not capable"}},
		{"503 #5.5.0 AUTH not permitted during a mail transaction", []string{"5.5.0", "bad sequence"}},
		{"503 #5.5.1 MAIL first", []string{"bad sequence"}},
		{"504 #5.5.1 AUTH mechanism XXX is not available", []string{"504:", "not implemented"}},
		{"530 #5.7.0 Must issue a STARTTLS command first", []string{"5.7.0", "STARTTLS", "Must issue"}},
		{"530 Authentication required", []string{"authentication or STARTTLS is required"}},
		{"538 #5.7.11 Encryption required", []string{"5.7.11", "encryption required for the requested authentication mechanism"}},
		{"552 #5.3.4 Message size exceeds limit", []string{"5.3.4", "too big"}},
		{"552 Size limit exceeded", []string{"exceeds a storage or size limit"}},
		{"554 #5.3.0 Server error", []string{"5.3.0", "transaction failed"}},
		{"554 Too many hops", []string{"554:"}},
		{"554 Message body contains illegal bare CR/LF characters.", []string{"bare CR/LF"}},
		{"250 2.0.0 Ok: queued as 4Xyz", []string{"250 2.0.0: success", "accepted"}},
		{"559 odd", []string{"does not define"}},
		{"550 5.7.99 unknown detail", []string{"unregistered code in the class of: other or undefined security status"}},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			r, err := ReadReply(NewReader(strings.NewReader(tc.line+"\r\n")), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := Explain(r)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain(%q) = %q, lacks %q", tc.line, got, w)
				}
			}
			if strings.Contains(got, "\n") {
				t.Errorf("explanation spans lines: %q", got)
			}
		})
	}
	if got := Explain(nil); got != "no reply was received" {
		t.Errorf("Explain(nil) = %q", got)
	}
}

// TestExplainStripsEveryCode: "The server said" quotes the words of every
// line without the enhanced code each line may start with.
func TestExplainStripsEveryCode(t *testing.T) {
	for in, want := range map[string]string{
		"452-#4.3.1 Insufficient\r\n452 #4.3.1 system storage\r\n": `The server said: "Insufficient system storage".`,
		"550-Mailbox unavailable\r\n550 5.1.1 no such user\r\n":    `The server said: "Mailbox unavailable no such user".`,
		"250-2.0.0 first\r\n250 2.0.0\r\n":                         `The server said: "first".`,
		"421 #4.4.5\tToo many\r\n":                                 `The server said: "Too many".`,
	} {
		r, err := ReadReply(NewReader(strings.NewReader(in)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := Explain(r); !strings.HasSuffix(got, want) {
			t.Errorf("Explain(%q) = %q, want it to end %q", in, got, want)
		}
	}
}

// TestExplainFailureIsSafe: an error's text, whoever wrote it (a policy
// server's certificate names, an IMAP server's NO), is escaped in the
// explanation: no ESC to recolour a terminal, no newline to forge a line.
func TestExplainFailureIsSafe(t *testing.T) {
	e := &Error{Phase: PhaseConnect, Reason: ReasonTLS, Err: errors.New("valid for evil\x1b[32m\nProbe succeeded in 0.1s.\u202e")}
	got := ExplainFailure(e)
	if strings.ContainsAny(got, "\x1b\n\u202e") || !strings.Contains(got, `evil\x1b[32m\x0aProbe succeeded`) {
		t.Errorf("ExplainFailure = %q", got)
	}
}

func TestExplainFailure(t *testing.T) {
	r := &Reply{Code: 550, Enhanced: EnhancedCode{5, 1, 1}, Lines: []string{"5.1.1 <x@y>: Recipient address rejected"}}
	got := ExplainFailure(&Error{Phase: PhaseRcpt, Reason: Reason5xx, Reply: r})
	for _, w := range []string{"failed in phase rcpt (reply_5xx): the server answered with a permanent failure: 550 5.1.1 <x@y>: Recipient address rejected"} {
		if !strings.Contains(got, w) {
			t.Errorf("ExplainFailure = %q, lacks %q", got, w)
		}
	}
	for _, reason := range Reasons {
		if reasonMeaning[reason] == "" {
			t.Errorf("reason %s has no explanation", reason)
		}
	}
}

// TestExplainCutsOnRuneBoundary: a long reply is clipped before a
// character, never inside one (issue 19.7): the quoted text stays valid
// UTF-8 whatever width the character at the cut has.
func TestExplainCutsOnRuneBoundary(t *testing.T) {
	for _, ch := range []string{"é", "€", "😀"} {
		for pad := range 4 {
			text := strings.Repeat("a", pad) + strings.Repeat(ch, 200)
			got := Explain(&Reply{Code: 550, Lines: []string{text}})
			if !utf8.ValidString(got) {
				t.Errorf("%q x200 after %d bytes: explanation is not valid UTF-8: %q", ch, pad, got)
			}
			quoted := got[strings.Index(got, `said: "`)+len(`said: "`) : strings.LastIndex(got, `...".`)]
			if len(quoted) > 200 || len(quoted) < 200-utf8.UTFMax || !strings.HasPrefix(text, quoted) {
				t.Errorf("%q x200 after %d bytes: quoted %d bytes, want a prefix of the reply of at most 200", ch, pad, len(quoted))
			}
		}
	}
}
