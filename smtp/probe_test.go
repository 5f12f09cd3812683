package smtp

import (
	"errors"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

const ehloOK = "S: 250-mx.test greets probe.test\n250-SIZE 10240000\n250-8BITMIME\n250 PIPELINING"

// testMessageRE matches the test message's lines (a date and a random
// Message-ID) and its final dot.
var testMessageRE = regexp.MustCompile(`(?s)Date: .*?\r\n\.\r\n`)

func TestProbeDialog(t *testing.T) {
	mailOpts := func(o *Options) { o.MailFrom = "probe@example.org"; o.RcptTo = []string{"postmaster@example.org"} }
	dataOpts := func(o *Options) { mailOpts(o); o.SendData = true }
	tests := []struct {
		name       string
		opts       func(*Options)
		steps      []string
		timeout    time.Duration
		wantPhase  Phase // "" means success
		wantReason Reason
		wantCode   int    // deciding reply code, 0 if none
		wantEnh    string // deciding enhanced code
		wantPhases string
		wantSent   string // every byte the client sent; the test message's lines as "<message>"
	}{
		{
			name:       "ehlo quit success",
			steps:      []string{"S: 220 mx.test ESMTP", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 221 2.0.0 bye"},
			wantCode:   221,
			wantEnh:    "2.0.0",
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "banner 421 with hash enhanced code, then polite quit",
			steps:      []string{"S: 421 #4.4.5 too many connections from your host", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseBanner,
			wantReason: Reason4xx,
			wantCode:   421,
			wantEnh:    "4.4.5",
			wantPhases: "resolve connect banner quit",
			wantSent:   "QUIT\r\n",
		},
		{
			name:       "banner 554 multi-line",
			steps:      []string{"S: 554-mx.test no SMTP service here\n554 5.7.1 go away", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseBanner,
			wantReason: Reason5xx,
			wantCode:   554,
			wantEnh:    "5.7.1", // on the last line only, as go-smtp writes it
			wantPhases: "resolve connect banner quit",
			wantSent:   "QUIT\r\n",
		},
		{
			name:       "banner closed",
			steps:      []string{"CLOSE"},
			wantPhase:  PhaseBanner,
			wantReason: ReasonClosed,
			wantPhases: "resolve connect banner",
			wantSent:   "",
		},
		{
			name:       "banner timeout",
			steps:      []string{"DRAIN"},
			timeout:    300 * time.Millisecond,
			wantPhase:  PhaseBanner,
			wantReason: ReasonTimeout,
			wantPhases: "resolve connect banner",
			wantSent:   "",
		},
		{
			name:       "not smtp: banner protocol",
			steps:      []string{"S: HTTP/1.1 400 Bad Request", "DRAIN"},
			wantPhase:  PhaseBanner,
			wantReason: ReasonProtocol,
			wantPhases: "resolve connect banner",
			wantSent:   "QUIT\r\n",
		},
		{
			name:       "ehlo refused falls back to helo",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "S: 502 5.5.1 command not implemented", "C: HELO probe.test", "S: 250 mx.test", "C: QUIT", "S: 221 bye"},
			wantCode:   221,
			wantPhases: "resolve connect banner ehlo ehlo quit",
			wantSent:   "EHLO probe.test\r\nHELO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "helo refused too",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "S: 500 what", "C: HELO probe.test", "S: 501 #5.0.0 EHLO requires domain address", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseEHLO,
			wantReason: Reason5xx,
			wantCode:   501,
			wantEnh:    "5.0.0",
			wantPhases: "resolve connect banner ehlo ehlo quit",
			wantSent:   "EHLO probe.test\r\nHELO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "ehlo 421 does not fall back",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "S: 421 4.3.2 shutting down", "C: QUIT", "CLOSE"},
			wantPhase:  PhaseEHLO,
			wantReason: Reason4xx,
			wantCode:   421,
			wantEnh:    "4.3.2",
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "ehlo closed",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "CLOSE"},
			wantPhase:  PhaseEHLO,
			wantReason: ReasonClosed,
			wantPhases: "resolve connect banner ehlo",
			wantSent:   "EHLO probe.test\r\n",
		},
		{
			name:       "ehlo timeout",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "DRAIN"},
			timeout:    300 * time.Millisecond,
			wantPhase:  PhaseEHLO,
			wantReason: ReasonTimeout,
			wantPhases: "resolve connect banner ehlo",
			wantSent:   "EHLO probe.test\r\n",
		},
		{
			name: "mail rcpt success",
			opts: mailOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 2.1.0 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 2.1.5 ok", "C: QUIT", "S: 221 2.0.0 bye"},
			wantCode:   221,
			wantEnh:    "2.0.0",
			wantPhases: "resolve connect banner ehlo mail rcpt quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nQUIT\r\n",
		},
		{
			name: "mail 530 must issue starttls first",
			opts: mailOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>",
				"S: 530 #5.7.0 Must issue a STARTTLS command first", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseMail,
			wantReason: Reason5xx,
			wantCode:   530,
			wantEnh:    "5.7.0",
			wantPhases: "resolve connect banner ehlo mail quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nQUIT\r\n",
		},
		{
			name:       "mail closed",
			opts:       mailOpts,
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "CLOSE"},
			wantPhase:  PhaseMail,
			wantReason: ReasonClosed,
			wantPhases: "resolve connect banner ehlo mail",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\n",
		},
		{
			name: "rcpt 452 too many recipients",
			opts: mailOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 452 #4.5.3 Too many recipients", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseRcpt,
			wantReason: Reason4xx,
			wantCode:   452,
			wantEnh:    "4.5.3",
			wantPhases: "resolve connect banner ehlo mail rcpt quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nQUIT\r\n",
		},
		{
			name: "second rcpt 550",
			opts: func(o *Options) { mailOpts(o); o.RcptTo = append(o.RcptTo, "nobody@example.org") },
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: RCPT TO:<nobody@example.org>", "S: 550 5.1.1 <nobody@example.org>: Recipient address rejected",
				"C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseRcpt,
			wantReason: Reason5xx,
			wantCode:   550,
			wantEnh:    "5.1.1",
			wantPhases: "resolve connect banner ehlo mail rcpt rcpt quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nRCPT TO:<nobody@example.org>\r\nQUIT\r\n",
		},
		{
			name: "rcpt timeout",
			opts: mailOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "DRAIN"},
			timeout:    400 * time.Millisecond,
			wantPhase:  PhaseRcpt,
			wantReason: ReasonTimeout,
			wantPhases: "resolve connect banner ehlo mail rcpt",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\n",
		},
		{
			name: "data refused",
			opts: dataOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: DATA", "S: 554 5.5.1 Error: no valid recipients", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseData,
			wantReason: Reason5xx,
			wantCode:   554,
			wantEnh:    "5.5.1",
			wantPhases: "resolve connect banner ehlo mail rcpt data quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nDATA\r\nQUIT\r\n",
		},
		{
			name: "message 552 too big",
			opts: dataOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: DATA", "S: 354 go ahead",
				"C: *", "C: *", "C: *", "C: *", "C: *", "C: *", "C: *", "C: *", "C: *", "C: *", "C: .",
				"S: 552 #5.3.4 message size exceeds limit", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseMessage,
			wantReason: Reason5xx,
			wantCode:   552,
			wantEnh:    "5.3.4",
			wantPhases: "resolve connect banner ehlo mail rcpt data message quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nDATA\r\n<message>\r\n.\r\nQUIT\r\n",
		},
		{
			name:       "unsolicited line after the ehlo reply",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "RAW: 250 mx\r\n250 unsolicited\r\n", "DRAIN"},
			wantPhase:  PhaseEHLO,
			wantReason: ReasonProtocol,
			wantPhases: "resolve connect banner ehlo",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "unsolicited line after the banner",
			steps:      []string{"RAW: 220 mx.test\r\n250 early talker\r\n", "DRAIN"},
			wantPhase:  PhaseBanner,
			wantReason: ReasonProtocol,
			wantPhases: "resolve connect banner",
			wantSent:   "QUIT\r\n",
		},
		{
			name: "unsolicited line after the 354",
			opts: dataOpts,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: DATA", "RAW: 354 go ahead\r\n250 2.0.0 queued before the message\r\n", "DRAIN"},
			wantPhase:  PhaseData,
			wantReason: ReasonProtocol,
			wantPhases: "resolve connect banner ehlo mail rcpt data",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nDATA\r\nQUIT\r\n",
		},
		{
			name:       "quit refused",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 500 5.5.1 what"},
			wantPhase:  PhaseQuit,
			wantReason: Reason5xx,
			wantCode:   500,
			wantEnh:    "5.5.1",
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "quit closed without reply",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "CLOSE"},
			wantPhase:  PhaseQuit,
			wantReason: ReasonClosed,
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "multi-line reply changing code",
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", "S: 250-mx.test\n251 SIZE", "DRAIN"},
			wantPhase:  PhaseEHLO,
			wantReason: ReasonProtocol,
			wantPhases: "resolve connect banner ehlo",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "bare LF server is tolerated",
			steps:      []string{"RAW: 220 mx.test\n", "C: EHLO probe.test", "RAW: 250-mx.test\n250 SIZE 100\n", "C: QUIT", "RAW: 221 bye\n"},
			wantCode:   221,
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name:       "starttls not offered",
			opts:       func(o *Options) { o.TLS = TLSStartTLS },
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseStartTLS,
			wantReason: ReasonUnsupported,
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name: "auth not offered",
			opts: func(o *Options) {
				o.Auth = &Auth{Username: "u", Password: func() (string, error) { return "p", nil }, AllowPlaintext: true}
			},
			steps:      []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseAuth,
			wantReason: ReasonUnsupported,
			wantPhases: "resolve connect banner ehlo quit",
			wantSent:   "EHLO probe.test\r\nQUIT\r\n",
		},
		{
			name: "open relay check: rcpt refused as expected",
			opts: func(o *Options) { mailOpts(o); o.Expect = map[Phase]int{PhaseRcpt: 5} },
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 554 5.7.1 Relay access denied", "C: RSET", "S: 250 ok", "C: QUIT", "S: 221 bye"},
			wantCode:   221,
			wantPhases: "resolve connect banner ehlo mail rcpt rset quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nRSET\r\nQUIT\r\n",
		},
		{
			name: "open relay check: relaying accepted fails expectation",
			opts: func(o *Options) { mailOpts(o); o.Expect = map[Phase]int{PhaseRcpt: 5} },
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 2.1.5 ok", "C: QUIT", "S: 221 bye"},
			wantPhase:  PhaseRcpt,
			wantReason: ReasonExpectation,
			wantCode:   250,
			wantEnh:    "2.1.5",
			wantPhases: "resolve connect banner ehlo mail rcpt quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nRCPT TO:<postmaster@example.org>\r\nQUIT\r\n",
		},
		{
			name: "starttls required: mail refused as expected, no rset",
			opts: func(o *Options) { o.MailFrom = "probe@example.org"; o.Expect = map[Phase]int{PhaseMail: 5} },
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>",
				"S: 530 5.7.0 Must issue a STARTTLS command first", "C: QUIT", "S: 221 bye"},
			wantCode:   221,
			wantPhases: "resolve connect banner ehlo mail quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<probe@example.org>\r\nQUIT\r\n",
		},
		{
			name: "null sender",
			opts: func(o *Options) { o.MailFrom = "<>"; o.RcptTo = []string{"postmaster@example.org"} },
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<>", "S: 250 ok",
				"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: QUIT", "S: 221 bye"},
			wantCode:   221,
			wantPhases: "resolve connect banner ehlo mail rcpt quit",
			wantSent:   "EHLO probe.test\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster@example.org>\r\nQUIT\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, tc.steps...))
			opts := baseOptions()
			if tc.opts != nil {
				tc.opts(opts)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			start := time.Now()
			res, err := probeFake(t, srv, opts, timeout)
			elapsed := time.Since(start)
			if elapsed > timeout+5*time.Second { // generous: catches a hang, not a slow machine
				t.Errorf("probe took %s, past its %s timeout", elapsed, timeout)
			}
			if tc.wantPhase == "" {
				if err != nil {
					t.Fatalf("probe failed: %v", err)
				}
			} else {
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("error = %v, want a *Error in phase %s", err, tc.wantPhase)
				}
				if perr.Phase != tc.wantPhase || perr.Reason != tc.wantReason {
					t.Errorf("failed in %s/%s (%v), want %s/%s", perr.Phase, perr.Reason, perr, tc.wantPhase, tc.wantReason)
				}
				if res.Err != perr {
					t.Errorf("Result.Err = %v, want the returned error", res.Err)
				}
			}
			code, enh := 0, ""
			if r := res.DecidingReply(); r != nil {
				code, enh = r.Code, r.Enhanced.String()
			}
			if code != tc.wantCode || enh != tc.wantEnh {
				t.Errorf("deciding reply = %d %q, want %d %q", code, enh, tc.wantCode, tc.wantEnh)
			}
			if got := phases(res); got != tc.wantPhases {
				t.Errorf("phases = %q, want %q", got, tc.wantPhases)
			}
			sr := srv.Wait(t)
			if sr.Err != nil && tc.wantPhase == "" {
				t.Errorf("server script: %v", sr.Err)
			}
			if got := testMessageRE.ReplaceAllString(sr.Recv, "<message>\r\n.\r\n"); got != tc.wantSent {
				t.Errorf("client sent %q, want %q", got, tc.wantSent)
			}
			if res.IPProtocol != 4 || res.Addr.Port() != srv.Port {
				t.Errorf("dialled %s (ip%d), want port %d over IPv4", res.Addr, res.IPProtocol, srv.Port)
			}
		})
	}
}

func TestProbeExtensionsAndSize(t *testing.T) {
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, "S: 220 mx.test", "C: EHLO probe.test",
		"S: 250-mx.test\n250-SIZE 10240000\n250-AUTH=LOGIN PLAIN\n250-b@d keyword\n250-8bitmime\n250 ENHANCEDSTATUSCODES", "C: QUIT", "S: 221 bye"))
	res, err := probeFake(t, srv, baseOptions(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SIZE": "10240000", "AUTH": "LOGIN PLAIN", "8BITMIME": "", "ENHANCEDSTATUSCODES": ""}
	if len(res.Extensions) != len(want) {
		t.Errorf("extensions = %v, want %v", res.Extensions, want)
	}
	for k, v := range want {
		if got, ok := res.Extensions[k]; !ok || got != v {
			t.Errorf("extension %s = %q (present %t), want %q", k, got, ok, v)
		}
	}
	if size, ok := res.MessageSizeLimit(); !ok || size != 10240000 {
		t.Errorf("size = %d, %t", size, ok)
	}
}

func TestProbeDataSendsUniqueMessage(t *testing.T) {
	steps := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
		"C: RCPT TO:<postmaster@example.org>", "S: 250 ok", "C: DATA", "S: 354 go ahead"}
	for i := 0; i < 10; i++ {
		steps = append(steps, "C: *")
	}
	steps = append(steps, "C: .", "S: 250 2.0.0 Ok: queued as ABC", "C: QUIT", "S: 221 bye")
	srv := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, steps...))
	opts := baseOptions()
	opts.MailFrom, opts.RcptTo, opts.SendData = "probe@example.org", []string{"postmaster@example.org"}, true
	var ids []string
	for i := 0; i < 2; i++ {
		res, err := probeFake(t, srv, opts, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		sr := srv.Wait(t)
		if sr.Err != nil {
			t.Fatalf("server: %v", sr.Err)
		}
		if res.MessageID == "" || !strings.Contains(sr.Recv, "\r\nMessage-ID: "+res.MessageID+"\r\n") {
			t.Errorf("Message-ID %q not sent in %q", res.MessageID, sr.Recv)
		}
		for _, h := range []string{"\r\nDate: ", "\r\nFrom: <probe@example.org>\r\n", "\r\nTo: <postmaster@example.org>\r\n", "\r\n\r\nThis message", "\r\n.\r\nQUIT\r\n"} {
			if !strings.Contains(sr.Recv, h) {
				t.Errorf("message lacks %q", h)
			}
		}
		if strings.Contains(strings.ReplaceAll(sr.Recv, "\r\n", ""), "\n") {
			t.Errorf("client sent a bare LF: %q", sr.Recv)
		}
		ids = append(ids, res.MessageID)
	}
	if ids[0] == ids[1] {
		t.Errorf("two probes sent the same Message-ID %s", ids[0])
	}
}

func TestProbeIPv6(t *testing.T) {
	testenv.Require(t, testenv.IPv6Loopback(), "no IPv6 loopback ([::1]) on this host")
	srv := smtptest.NewFake(t, "tcp6", smtptest.Script(nil, "S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 221 bye"))
	opts := baseOptions()
	opts.IPProtocol = "ip6"
	res, err := probeFake(t, srv, opts, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.IPProtocol != 6 || res.Addr.Addr().String() != "::1" {
		t.Errorf("dialled %s ip%d, want [::1] ip6", res.Addr, res.IPProtocol)
	}
}

func TestProbeConnectRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	res, err := Probe(t.Context(), "127.0.0.1", port, baseOptions())
	var perr *Error
	if !errors.As(err, &perr) || perr.Phase != PhaseConnect || perr.Reason != ReasonConnect {
		t.Fatalf("err = %v, want connect/connect", err)
	}
	// Said once: not "connect: connect: dial tcp ...: connect: connection refused".
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	if got, want := err.Error(), "connect: "+addr+": connection refused"; got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%v does not wrap ECONNREFUSED", err)
	}
	if got := phases(res); got != "resolve connect" {
		t.Errorf("phases = %q", got)
	}
}

// TestMessageSizeLimit: RFC 1870, "SIZE 0" means no fixed limit.
func TestMessageSizeLimit(t *testing.T) {
	for _, tc := range []struct {
		ext    map[string]string
		size   int64
		wantOK bool
	}{
		{map[string]string{"SIZE": "10240000"}, 10240000, true},
		{map[string]string{"SIZE": "0"}, 0, false},
		{map[string]string{"SIZE": ""}, 0, false},
		{map[string]string{"SIZE": "-5"}, 0, false},
		{map[string]string{"SIZE": "big"}, 0, false},
		{map[string]string{"8BITMIME": ""}, 0, false},
		{nil, 0, false},
	} {
		r := &Result{Extensions: tc.ext}
		if size, ok := r.MessageSizeLimit(); size != tc.size || ok != tc.wantOK {
			t.Errorf("extensions %v: MessageSizeLimit = %d, %t; want %d, %t", tc.ext, size, ok, tc.size, tc.wantOK)
		}
	}
}

// TestTestMessageForm: the test message carries the Message-ID and X-Mailer
// forms that the delivery check (package delivery) recognises as a probe's:
// "<unix-seconds.24-hex-digits@helo>" and "smtp_exporter".
func TestTestMessageForm(t *testing.T) {
	p := &prober{opts: &Options{HeloName: "probe.test", MailFrom: "a@probe.test", RcptTo: []string{"b@probe.test"}}, res: &Result{}}
	msg, err := mail.ReadMessage(strings.NewReader(strings.TrimSuffix(p.testMessage(), ".\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	form := regexp.MustCompile(`^<([0-9]{1,19})\.[0-9a-f]{24}@probe\.test>$`)
	if !form.MatchString(p.res.MessageID) || msg.Header.Get("Message-Id") != p.res.MessageID {
		t.Errorf("Message-ID %q (header %q) is not of the form the delivery check looks for", p.res.MessageID, msg.Header.Get("Message-Id"))
	}
	if got := msg.Header.Get("X-Mailer"); got != "smtp_exporter" {
		t.Errorf("X-Mailer %q", got)
	}
}

// TestReaderPoolKeepsNothing: the reply readers are pooled; a probe that
// ends with bytes left in its reader (a server talking out of turn) leaves
// nothing for the next probe to read: each probe reads its own server only.
func TestReaderPoolKeepsNothing(t *testing.T) {
	early := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, "RAW: 220 early.test\r\n250 leftover from another server\r\n", "DRAIN"))
	good := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, "S: 220 good.test", "C: EHLO probe.test", ehloOK, "C: QUIT", "S: 221 bye"))
	for i := range 5 {
		var perr *Error
		if _, err := probeFake(t, early, baseOptions(), 5*time.Second); !errors.As(err, &perr) || perr.Reason != ReasonProtocol {
			t.Fatalf("round %d: the early talker: %v, want a protocol failure", i, err)
		}
		early.Wait(t)
		res, err := probeFake(t, good, baseOptions(), 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: the good server after it: %v", i, err)
		}
		if r := res.Phases[2].Reply; res.Phases[2].Phase != PhaseBanner || r.String() != "220 good.test" {
			t.Errorf("round %d: banner %q, want the good server's", i, r)
		}
		if sr := good.Wait(t); sr.Err != nil {
			t.Errorf("round %d: server script: %v", i, sr.Err)
		}
	}
}
