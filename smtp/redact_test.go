package smtp

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestEchoedSecretsScrubbed: a server that echoes the credentials (the
// password, its base64, the PLAIN blob, the CRAM-MD5 response) in its
// replies, in a malformed line or after its reply leaves no trace of them in
// the Result, the error or the transcript.
func TestEchoedSecretsScrubbed(t *testing.T) {
	pki := validPKI(t)
	challenge := "<1896.697170952@mx.test>"
	mac := hmac.New(md5.New, []byte(testPassword))
	mac.Write([]byte(challenge))
	digest := hex.EncodeToString(mac.Sum(nil))
	cram := b64(testUser + " " + digest)
	plain := b64("\x00" + testUser + "\x00" + testPassword)
	secretList := []string{testPassword, b64(testPassword), plain, cram, digest}
	pre := []string{"S: 220 mx.test", "C: EHLO probe.test", ehloTLS, "C: STARTTLS", "S: 220 go", "TLS", "C: EHLO probe.test", ehloAfterTLS}
	for _, tc := range []struct {
		name, mechanism string
		steps           []string
		ehlo            string // the EHLO reply inside TLS, if not ehloAfterTLS
	}{
		{"PLAIN echoed in a 535", "PLAIN", []string{"C: *", "S: 535-5.7.8 bad credentials " + plain + "\n535 5.7.8 password was " + testPassword, "C: QUIT", "S: 221 bye"}, ""},
		{"LOGIN echoed in a 535", "LOGIN", []string{"C: AUTH LOGIN", "S: 334 VXNlcm5hbWU6", "C: *", "S: 334 UGFzc3dvcmQ6", "C: *",
			"S: 535 5.7.8 " + b64(testPassword) + " (" + testPassword + ") is wrong", "C: QUIT", "S: 221 bye"}, ""},
		{"CRAM-MD5 echoed in a 535", "CRAM-MD5", []string{"C: AUTH CRAM-MD5", "S: 334 " + b64(challenge), "C: *",
			"S: 535 5.7.8 " + cram + " digest " + digest, "C: QUIT", "S: 221 bye"}, ""},
		{"echoed in a malformed line", "PLAIN", []string{"C: *", "S: " + testPassword + " is not a reply", "DRAIN"}, ""},
		{"echoed after the reply", "PLAIN", []string{"C: *", "RAW: 235 2.7.0 ok\r\n250 " + plain + "\r\n", "DRAIN"}, ""},
		{"echoed in the QUIT reply", "PLAIN", []string{"C: *", "S: 235 ok", "C: QUIT", "S: 221 " + testPassword}, ""},
		{"advertised as an EHLO keyword", "PLAIN", []string{"C: *", "S: 235 ok", "C: QUIT", "S: 221 bye"}, "S: 250-mx.test\n250-" + testPassword + "\n250 AUTH PLAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := append([]string{}, pre...)
			if tc.ehlo != "" {
				steps[len(steps)-1] = tc.ehlo
			}
			srv := smtptest.NewFake(t, "tcp4", smtptest.Script(pki.Server, append(steps, tc.steps...)...))
			var transcript []string
			opts := baseOptions()
			opts.TLS, opts.TLSConfig = TLSStartTLS, &tls.Config{RootCAs: pki.Pool}
			opts.Auth = &Auth{Username: testUser, Password: func() (string, error) { return testPassword, nil }, Mechanism: tc.mechanism}
			opts.Transcript = func(l TranscriptLine) { transcript = append(transcript, l.String()) }
			res, err := probeFake(t, srv, opts, 10*time.Second)
			checkKeptScrubbed(t, res, err, transcript, secretList)
		})
	}
}

// checkKeptScrubbed fails the test if any of secrets is in what the probe
// kept or showed (the error, the transcript, the Result's error and replies
// with their explanations, the EHLO keywords), or if nothing shows
// <redacted>.
func checkKeptScrubbed(t *testing.T, res *Result, err error, transcript []string, secrets []string) {
	t.Helper()
	kept := []string{err2s(err), strings.Join(transcript, "\n")}
	if res.Err != nil {
		kept = append(kept, res.Err.Error(), ExplainFailure(res.Err))
	}
	for _, ph := range res.Phases {
		if ph.Reply != nil {
			kept = append(kept, ph.Reply.String(), Explain(ph.Reply))
		}
	}
	for k := range res.Extensions {
		kept = append(kept, k+" "+res.Extensions[k])
	}
	all := strings.Join(kept, "\n")
	for _, secret := range secrets {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q is in what the probe kept:\n%s", secret, all)
		}
	}
	if !strings.Contains(all, redacted) {
		t.Errorf("nothing shows %s:\n%s", redacted, all)
	}
}
