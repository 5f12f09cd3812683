package smtp

import (
	"context"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestExpectationMetThenClosed: once the reply a module expects came, the
// verdict is in; RSET and QUIT after it are courtesy, sent best effort and
// recorded, and a server that refuses and hangs up (Exim's drop ACL, a
// STARTTLS-required server answering 530 and closing) or stalls does not
// turn the met expectation into a failure.
func TestExpectationMetThenClosed(t *testing.T) {
	rcptRefused := func(o *Options) {
		o.MailFrom, o.RcptTo = "probe@example.org", []string{"postmaster@example.org"}
		o.Expect = map[Phase]int{PhaseRcpt: 5}
	}
	mailRefused := func(o *Options) { o.MailFrom = "probe@example.org"; o.Expect = map[Phase]int{PhaseMail: 5} }
	toRcpt := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>", "S: 250 ok",
		"C: RCPT TO:<postmaster@example.org>"}
	tests := []struct {
		name       string
		opts       func(*Options)
		steps      []string
		wantPhases string // "" : not asserted (the server's timing decides)
		wantCode   int
		wantEnh    string
		wantNote   string
	}{
		{name: "relaying denied, then the line drops (Exim drop ACL)", opts: rcptRefused,
			steps:      append(toRcpt, "S: 550 5.7.1 relaying denied", "CLOSE"),
			wantPhases: "resolve connect banner ehlo mail rcpt rset", wantCode: 550, wantEnh: "5.7.1",
			wantNote: "RSET after the expected reply"},
		{name: "relaying denied, 421 and the line drops", opts: rcptRefused,
			steps:    append(toRcpt, "RAW: 550 5.7.1 relaying denied\r\n421 4.7.0 mx.test closing connection\r\n", "CLOSE"),
			wantCode: 550, wantEnh: "5.7.1", wantNote: "after the expected reply"},
		{name: "STARTTLS required: 530, then the line drops", opts: mailRefused,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>",
				"S: 530 5.7.0 Must issue a STARTTLS command first", "CLOSE"},
			wantPhases: "resolve connect banner ehlo mail quit", wantCode: 530, wantEnh: "5.7.0",
			wantNote: "QUIT after the expected reply"},
		{name: "relaying denied, then silence", opts: rcptRefused,
			steps:      append(toRcpt, "S: 550 5.7.1 relaying denied", "DRAIN"),
			wantPhases: "resolve connect banner ehlo mail rcpt rset", wantCode: 550, wantEnh: "5.7.1",
			wantNote: "RSET after the expected reply"},
		{name: "RSET answered 421, then the line drops", opts: rcptRefused,
			steps:      append(toRcpt, "S: 554 5.7.1 no relaying", "C: RSET", "S: 421 4.3.2 shutting down", "CLOSE"),
			wantPhases: "resolve connect banner ehlo mail rcpt rset quit", wantCode: 554, wantEnh: "5.7.1",
			wantNote: "RSET after the expected reply"},
		{name: "QUIT answered 554", opts: mailRefused,
			steps: []string{"S: 220 mx.test", "C: EHLO probe.test", ehloOK, "C: MAIL FROM:<probe@example.org>",
				"S: 530 5.7.0 Must issue a STARTTLS command first", "C: QUIT", "S: 554 5.3.0 go away"},
			wantPhases: "resolve connect banner ehlo mail quit", wantCode: 530, wantEnh: "5.7.0",
			wantNote: "QUIT after the expected reply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(nil, tc.steps...))
			opts := baseOptions()
			tc.opts(opts)
			var notes []string
			opts.Transcript = func(l TranscriptLine) {
				if l.Dir == Note {
					notes = append(notes, l.Text)
				}
			}
			const timeout = 8 * time.Second
			start := time.Now()
			res, err := probeFake(t, srv, opts, timeout)
			if err != nil {
				t.Fatalf("probe failed: %v (phases %s)", err, phases(res))
			}
			// The courtesy has its budget (quitBudget), not the probe's.
			if took := time.Since(start); took > timeout-2*time.Second {
				t.Errorf("took %s: the courtesy waited for the probe's deadline", took)
			}
			if tc.wantPhases != "" && phases(res) != tc.wantPhases {
				t.Errorf("phases = %q, want %q", phases(res), tc.wantPhases)
			}
			code, enh := 0, ""
			if r := res.DecidingReply(); r != nil {
				code, enh = r.Code, r.Enhanced.String()
			}
			if code != tc.wantCode || enh != tc.wantEnh {
				t.Errorf("deciding reply = %d %q, want %d %q", code, enh, tc.wantCode, tc.wantEnh)
			}
			if all := strings.Join(notes, "\n"); !strings.Contains(all, tc.wantNote) || !strings.Contains(all, "not a failure") {
				t.Errorf("notes lack %q and \"not a failure\":\n%s", tc.wantNote, all)
			}
			srv.Wait(t)
		})
	}
}

// TestTestMessageDeadline: with MarkDeadline the test message says when
// its probe stops waiting for it (the probe's deadline, rounded up to the
// second), so that a delivery check's cleanup of a shared mailbox spares it
// until then; without, it carries no such header.
func TestTestMessageDeadline(t *testing.T) {
	deadline := time.Now().Add(90 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, mark := range []bool{true, false} {
		p := &prober{ctx: ctx, res: &Result{},
			opts: &Options{HeloName: "probe.test", MailFrom: "a@probe.test", RcptTo: []string{"b@probe.test"}, MarkDeadline: mark}}
		msg, err := mail.ReadMessage(strings.NewReader(strings.TrimSuffix(p.testMessage(), ".\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		got := msg.Header.Get("X-Smtp-Exporter-Deadline")
		want := ""
		if mark {
			want = strconv.FormatInt(deadline.Unix()+1, 10)
		}
		if got != want {
			t.Errorf("MarkDeadline %t: X-Smtp-Exporter-Deadline %q, want %q", mark, got, want)
		}
	}
}
