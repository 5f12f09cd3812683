package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// TestPhaseOutcomeMatrix runs every phase of a full dialog (banner, EHLO,
// STARTTLS, AUTH, MAIL, RCPT, DATA, message, QUIT) against each bad outcome
// (4xx, 5xx, close, timeout) and checks the phase, the reason, the deciding
// reply and every byte the client sent.
func TestPhaseOutcomeMatrix(t *testing.T) {
	pki := validPKI(t)
	// The dialog as (phase, what the client sends, what the server answers).
	type step struct {
		phase  Phase
		client []string // lines, in order; "*" is any line
		reply  string
	}
	dialog := []step{
		{PhaseBanner, nil, "220 mx.test ESMTP"},
		{PhaseEHLO, []string{"EHLO probe.test"}, "250-mx.test\n250-AUTH PLAIN\n250 STARTTLS"},
		{PhaseStartTLS, []string{"STARTTLS"}, "220 go ahead"},
		{PhaseAuth, []string{"AUTH PLAIN " + b64("\x00u\x00p")}, "235 2.7.0 ok"},
		{PhaseMail, []string{"MAIL FROM:<probe@example.org>"}, "250 2.1.0 ok"},
		{PhaseRcpt, []string{"RCPT TO:<postmaster@example.org>"}, "250 2.1.5 ok"},
		{PhaseData, []string{"DATA"}, "354 go ahead"},
		{PhaseMessage, append(strings.Split(strings.Repeat("*,", 10), ",")[:10], "."), "250 2.0.0 queued"},
		{PhaseQuit, []string{"QUIT"}, "221 2.0.0 bye"},
	}
	outcomes := []struct {
		name   string
		reason Reason
		code   int
	}{
		{"4xx", Reason4xx, 451}, {"5xx", Reason5xx, 554}, {"close", ReasonClosed, 0}, {"timeout", ReasonTimeout, 0},
	}
	for fail := range dialog {
		for _, out := range outcomes {
			failing := dialog[fail]
			t.Run(string(failing.phase)+"/"+out.name, func(t *testing.T) {
				t.Parallel()
				var steps, sent []string
				for i, st := range dialog[:fail+1] {
					for _, line := range st.client {
						steps = append(steps, "C: "+line)
						if line != "*" {
							sent = append(sent, line)
						}
					}
					if i < fail {
						steps = append(steps, "S: "+st.reply)
						if st.phase == PhaseStartTLS {
							steps = append(steps, "TLS", "C: EHLO probe.test", "S: 250-mx.test\n250 AUTH PLAIN")
							sent = append(sent, "EHLO probe.test")
						}
						continue
					}
					switch out.name {
					case "4xx", "5xx":
						steps = append(steps, fmt.Sprintf("S: %d %d.0.0 no", out.code, out.code/100))
						if failing.phase != PhaseQuit {
							steps = append(steps, "C: QUIT", "S: 221 bye")
							sent = append(sent, "QUIT")
						}
					case "close":
						steps = append(steps, "CLOSE")
					case "timeout":
						steps = append(steps, "DRAIN")
					}
				}
				srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, steps...))
				opts := baseOptions()
				opts.TLS, opts.TLSConfig = TLSStartTLS, tlsConfigWithRoots(pki)
				opts.Auth = &Auth{Username: "u", Password: func() (string, error) { return "p", nil }, Mechanism: "PLAIN"}
				opts.MailFrom, opts.RcptTo, opts.SendData = "probe@example.org", []string{"postmaster@example.org"}, true
				// Only the timeout outcome waits for the deadline; the others
				// get a long one, so a slow machine cannot turn them into
				// timeouts.
				timeout := 30 * time.Second
				if out.reason == ReasonTimeout {
					timeout = 400 * time.Millisecond
				}
				start := time.Now()
				res, err := probeFake(t, srv, opts, timeout)
				if took := time.Since(start); took > timeout+5*time.Second {
					t.Errorf("took %s, past the %s timeout", took, timeout)
				}
				var perr *Error
				if !errors.As(err, &perr) || perr.Phase != failing.phase || perr.Reason != out.reason {
					t.Fatalf("err = %v, want %s/%s", err, failing.phase, out.reason)
				}
				code := 0
				if r := res.DecidingReply(); r != nil {
					code = r.Code
				}
				if code != out.code {
					t.Errorf("deciding code %d, want %d", code, out.code)
				}
				sr := srv.Wait(t)
				got := strings.Split(strings.TrimSuffix(sr.Recv, "\r\n"), "\r\n")
				// Lines the client sent in clear and over TLS, minus the
				// message body (matched by "*").
				if !sameSkippingBody(got, sent) {
					t.Errorf("client sent %q, want %q (body lines aside)", got, sent)
				}
			})
		}
	}
}

func tlsConfigWithRoots(pki *testpki.PKI) *tls.Config {
	return &tls.Config{RootCAs: pki.Pool}
}

// sameSkippingBody compares what the client sent with what it should have,
// ignoring the test message's header and body lines, which carry a date
// and a random Message-ID.
func sameSkippingBody(got, want []string) bool {
	var filtered []string
	inBody := false
	for _, l := range got {
		switch {
		case strings.HasPrefix(l, "Date: "):
			inBody = true
		case inBody && l == ".":
			filtered = append(filtered, l)
			inBody = false
		case !inBody:
			filtered = append(filtered, l)
		}
	}
	return strings.Join(filtered, "\n") == strings.Join(want, "\n")
}
