package smtp

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
	"github.com/smtp-exporter/smtp_exporter/internal/textsafe"
)

func TestSafeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, tab\tand all", "plain text, tab\tand all"},
		{"ünïcödé ✓ 日本", "ünïcödé ✓ 日本"},
		{"esc\x1b[31mred", `esc\x1b[31mred`},
		{"cr\rlf\nnul\x00del\x7f", `cr\x0dlf\x0anul\x00del\x7f`},
		{"c1 \u0085 \u009b", `c1 \u0085 \u009b`},
		{"rlo \u202e gnp.exe", `rlo \u202e gnp.exe`},
		{"bidi \u200e\u200f\u061c\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", `bidi \u200e\u200f\u061c\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069`},
		{"ls \u2028 ps \u2029", `ls \u2028 ps \u2029`},
		{"bad \xff\xfe utf8 \xe2\x82", `bad \xff\xfe utf8 \xe2\x82`},
		{"a real \uFFFD stays", "a real \uFFFD stays"},
		{`back\slash \x41 stays`, `back\slash \x41 stays`},
		{"", ""},
	} {
		t.Run(tc.want, func(t *testing.T) {
			got := SafeText(tc.in)
			if got != tc.want {
				t.Errorf("SafeText(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := SafeText(got); again != got {
				t.Errorf("SafeText is not idempotent: %q -> %q", got, again)
			}
		})
	}
}

func FuzzSafeText(f *testing.F) {
	for _, s := range []string{"ok", "\x1b[2J", "\u202e", "\xff", "a\r\nb", "\u0085"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := SafeText(s)
		if !utf8.ValidString(out) || !isSafe(out) || SafeText(out) != out {
			t.Fatalf("SafeText(%q) = %q is not safe", s, out)
		}
		for _, r := range out {
			if (r < 0x20 && r != '\t') || r == 0x7f || unsafeRune(r) {
				t.Fatalf("SafeText(%q) = %q keeps %U", s, out, r)
			}
		}
		if isSafe(s) && out != s {
			t.Fatalf("SafeText changed safe text %q to %q", s, out)
		}
	})
}

// TestServerTextIsSafe: reply lines, a certificate's names and errors that
// quote the server reach the Result, errors and the transcript escaped.
func TestServerTextIsSafe(t *testing.T) {
	forged := "mx.test\n[  0.000s] S: 250 forged line\x1b[2J" // a certificate name is ASCII
	pki := testpki.Valid(t, forged, "127.0.0.1")
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, "TLS", "S: 220 mx.test \x1b]0;owned\x07 \u0085 \u202e ready",
		"C: EHLO probe.test", "RAW: 250-mx.test\r\n250 SIZE 100 \xff\u2028\r\nnot smtp \x1b[1m\r\n", "DRAIN"))
	var lines []TranscriptLine
	opts := baseOptions()
	opts.TLS, opts.TLSConfig = TLSImplicit, &tls.Config{InsecureSkipVerify: true}
	opts.Transcript = func(l TranscriptLine) { lines = append(lines, l) }
	res, err := probeFake(t, srv, opts, 10*time.Second)
	if err == nil {
		t.Fatal("the unsolicited line after the EHLO reply went unnoticed")
	}
	var all []string
	for _, l := range lines {
		all = append(all, l.String())
	}
	all = append(all, err.Error(), ExplainFailure(res.Err))
	for _, ph := range res.Phases {
		if ph.Reply != nil {
			all = append(all, ph.Reply.String(), Explain(ph.Reply))
		}
	}
	for _, text := range all {
		if !isSafe(text) || strings.ContainsAny(text, "\r\x1b\x07") {
			t.Errorf("unsafe text: %q", text)
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{`\x1b]0;owned\x07 \u0085 \u202e ready`, `mx.test\x0a[  0.000s] S: 250 forged line\x1b[2J`, `SIZE 100 \xff\u2028`, `"not smtp \x1b[1m"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("the escaped form %q is not shown:\n%s", want, joined)
		}
	}
}

// TestCertificateErrorIsSafe: a verification error quoting a certificate's
// names is escaped in the error and in TLSState.VerifyError.
func TestCertificateErrorIsSafe(t *testing.T) {
	pki := testpki.Valid(t, "mx.test\n[  0.000s] S: 250 forged\x1b[2J")
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, "TLS", "DRAIN"))
	var lines []string
	opts := baseOptions()
	opts.TLS, opts.TLSConfig = TLSImplicit, &tls.Config{RootCAs: pki.Pool, ServerName: "other.test"}
	opts.Transcript = func(l TranscriptLine) { lines = append(lines, l.String()) }
	res, err := probeFake(t, srv, opts, 10*time.Second)
	if err == nil || res.TLS == nil || res.TLS.VerifyError == nil {
		t.Fatalf("err = %v, tls = %+v: want a verification failure", err, res.TLS)
	}
	for _, text := range append(lines, err.Error(), res.TLS.VerifyError.Error()) {
		if !isSafe(text) {
			t.Errorf("unsafe text: %q", text)
		}
	}
	if !strings.Contains(res.TLS.VerifyError.Error(), `mx.test\x0a[  0.000s] S: 250 forged\x1b[2J`) {
		t.Errorf("VerifyError = %q, want the escaped name", res.TLS.VerifyError)
	}
}

// isSafe and unsafeRune are textsafe's judgement, for the checks above.
func isSafe(s string) bool { return textsafe.IsSafe(s) }

func unsafeRune(r rune) bool { return r >= utf8.RuneSelf && !textsafe.IsSafe(string(r)) }
