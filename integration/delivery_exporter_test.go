package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// deliveryThroughExporter runs delivery_check modules as users do: the
// probe command (transcript with the IMAP steps, exit 0 or 2) and /probe
// (probe_smtp_delivery_seconds), against the instance's Postfix and
// Dovecot.
func deliveryThroughExporter(t *testing.T, p *postfix) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "imap.password")
	write(t, pw, inboxPassword+"\n")
	wrongPw := filepath.Join(dir, "wrong.password")
	const wrong = "Wr0ng-Imap-Pa55"
	write(t, wrongPw, wrong+"\n")
	module := func(name, rcpt, passwordFile, timeout string) string {
		return fmt.Sprintf(`  %s:
    timeout: 30s
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [%s]
    send_data: true
    delivery_check:
      imap: %s
      tls: implicit
      tls_config: {ca_file: %s, server_name: mx.probe.test}
      username: %s
      password_file: %s
      timeout: %s
      targets: [127.0.0.1]
`, name, rcpt, p.imapImplicit, p.caFile, inboxAddr, passwordFile, timeout)
	}
	conf := filepath.Join(dir, "delivery.yml")
	write(t, conf, "modules:\n"+module("roundtrip", inboxAddr, pw, "20s")+module("held", heldAddr, pw, "3s")+module("wrong", inboxAddr, wrongPw, "10s"))

	t.Run("probe command", func(t *testing.T) {
		code, out := runProbeCLI(t, p.plain, "--config.file="+conf, "--module=roundtrip")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, p.maillog())
		}
		for _, want := range []string{"C: DATA", "[imap " + p.imapImplicit + "]", "LOGIN <redacted>", "message found", "message deleted", "Probe succeeded"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		code, out = runProbeCLI(t, p.plain, "--config.file="+conf, "--module=held")
		if code != 2 || !strings.Contains(out, "failed in phase delivery (timeout)") {
			t.Errorf("held: exit %d, want 2 and a delivery timeout:\n%s", code, out)
		}
		code, out = runProbeCLI(t, p.plain, "--config.file="+conf, "--module=wrong")
		if code != 2 || !strings.Contains(out, "failed in phase delivery (auth)") || strings.Contains(out, wrong) {
			t.Errorf("wrong password: exit %d, want 2, a delivery auth failure and no password:\n%s", code, out)
		}
	})

	t.Run("/probe", func(t *testing.T) {
		e := testenv.StartExporter(t, binary, "--config.file="+conf, "--log.level=debug")
		code, body := e.Get(t, "/probe?module=roundtrip&target="+p.plain)
		v, ok := metricValue(body, "probe_smtp_delivery_seconds")
		if code != 200 || !strings.Contains(body, "probe_success 1\n") || !ok || v <= 0 || v > 15 {
			t.Errorf("roundtrip: %d, delivery %v (%t), want success in (0, 15s]:\n%s", code, v, ok, body)
		}
		if !strings.Contains(body, `probe_smtp_phase_duration_seconds{phase="delivery"}`) {
			t.Errorf("no delivery phase:\n%s", body)
		}
		_, body = e.Get(t, "/probe?module=held&target="+p.plain)
		if !strings.Contains(body, `probe_smtp_failure_info{phase="delivery",reason="timeout"} 1`) || strings.Contains(body, "probe_smtp_delivery_seconds") {
			t.Errorf("held:\n%s", body)
		}
		_, body = e.Get(t, "/probe?module=wrong&target="+p.plain+"&debug=true")
		if !strings.Contains(body, `probe_smtp_failure_info{phase="delivery",reason="auth"} 1`) || strings.Contains(body+e.Log(), wrong) {
			t.Errorf("wrong password (the password must show nowhere):\n%s\n%s", body, e.Log())
		}
	})
}
