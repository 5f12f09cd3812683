package smtp

import (
	"testing"
	"time"
)

// TestTranscriptLineFormat: a line's time is right-aligned in seven
// characters with milliseconds, an exchanger's name stands before the
// direction, and AppendTo writes what String does after what it is given.
func TestTranscriptLineFormat(t *testing.T) {
	tests := []struct {
		line TranscriptLine
		want string
	}{
		{TranscriptLine{At: 12 * time.Millisecond, Dir: Server, Text: "220 mx.example.org ESMTP"}, "[  0.012s] S: 220 mx.example.org ESMTP"},
		{TranscriptLine{Dir: Client, Text: "EHLO probe.test"}, "[  0.000s] C: EHLO probe.test"},
		{TranscriptLine{At: 1500 * time.Microsecond, Host: "mx1.example.org", Dir: Note, Text: "connected"}, "[  0.002s] [mx1.example.org] *: connected"},
		{TranscriptLine{At: 1234567 * time.Millisecond, Dir: Server, Text: "slow"}, "[1234.567s] S: slow"},
		{TranscriptLine{At: 123456 * time.Millisecond, Dir: Server, Text: "221 bye"}, "[123.456s] S: 221 bye"},
		{TranscriptLine{At: time.Second, Dir: Server, Text: `250 caf\u00e9 \x1b`}, `[  1.000s] S: 250 caf\u00e9 \x1b`},
		{TranscriptLine{Dir: Server}, "[  0.000s] S: "},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.line.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if got := string(tc.line.AppendTo([]byte("before\n"))); got != "before\n"+tc.want {
				t.Errorf("AppendTo = %q, want %q after the prefix", got, tc.want)
			}
		})
	}
}
