package integration

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// exporterConfig is the exporter's config for the private Postfix.
func exporterConfig(t *testing.T, p *postfix) string {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good.pw"), saslPassword+"\n")
	write(t, filepath.Join(dir, "wrong.pw"), "not-the-password\n")
	tlsCA := "    tls_config: {ca_file: " + p.caFile + ", server_name: mx.probe.test}\n"
	conf := `modules:
  plain:
    helo_name: probe.test
  starttls:
    helo_name: probe.test
    tls: starttls
` + tlsCA + `  starttls_untrusted:
    helo_name: probe.test
    tls: starttls
    tls_config: {server_name: mx.probe.test}
  implicit:
    helo_name: probe.test
    tls: implicit
` + tlsCA + `  auth:
    helo_name: probe.test
    tls: starttls
` + tlsCA + `    auth: {username: ` + saslUser + `, password_file: good.pw, targets: [127.0.0.1]}
  auth_wrong:
    helo_name: probe.test
    tls: starttls
` + tlsCA + `    auth: {username: ` + saslUser + `, password_file: wrong.pw, mechanism: PLAIN, targets: [127.0.0.1]}
  rcpt_reject:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [reject@probe.test]
  rcpt_defer:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [defer@probe.test]
  delivery:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [` + sinkAddr + `]
    send_data: true
  open_relay:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [relay-test@example.net]
    expect_reply: {rcpt: 5xx}
  open_relay_accepting:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [` + sinkAddr + `]
    expect_reply: {rcpt: 5xx}
  starttls_required:
    helo_name: probe.test
    mail_from: probe@probe.test
    expect_reply: {mail: 5xx}
  postscreen:
    helo_name: probe.test
    timeout: 15s
`
	path := filepath.Join(dir, "smtp_exporter.yml")
	write(t, path, conf)
	return path
}

func TestPostfix(t *testing.T) {
	p := startPostfix(t)
	conf := exporterConfig(t, p)
	e := testenv.StartExporter(t, binary, "--config.file="+conf, "--log.level=debug")

	scenarios := []struct {
		name, module, addr string
		success            bool
		metrics            []string // series that must be present, "name{labels} value"
		absent             []string // what the /probe answer must not have
		cli                []string // lines the probe command must print
	}{
		{name: "plain EHLO..QUIT", module: "plain", addr: p.plain, success: true,
			metrics: []string{`probe_smtp_reply_code{phase="banner"} 220`, `probe_smtp_reply_code{phase="ehlo"} 250`, `probe_smtp_last_reply_code 221`,
				`probe_smtp_last_enhanced_status_info{code="2.0.0"} 1`, `probe_smtp_extension_info{extension="PIPELINING"} 1`,
				`probe_smtp_extension_info{extension="STARTTLS"} 1`, `probe_smtp_extension_info{extension="ENHANCEDSTATUSCODES"} 1`,
				`probe_smtp_extension_info{extension="8BITMIME"} 1`, `probe_smtp_message_size_limit_bytes 1.024e+07`},
			cli: []string{"S: 220 mx.probe.test ESMTP", "C: EHLO probe.test", "S: 250-PIPELINING", "S: 221 2.0.0 Bye", "Probe succeeded"}},
		{name: "STARTTLS with ca_file", module: "starttls", addr: p.plain, success: true,
			metrics: []string{`probe_smtp_reply_code{phase="starttls"} 220`, `probe_tls_version_info{version="TLS 1.3"} 1`,
				`probe_ssl_earliest_cert_expiry ` + formatFloat(float64(p.certNotAfter.Unix()))},
			cli: []string{"C: STARTTLS", "S: 220 2.0.0 Ready to start TLS", "TLS handshake done: TLS 1.3", "verified: true", "Probe succeeded"}},
		{name: "STARTTLS without the CA", module: "starttls_untrusted", addr: p.plain,
			// The certificate is reported; no TLS version, since the handshake
			// failed on it.
			metrics: []string{`probe_smtp_failure_info{phase="starttls",reason="tls"} 1`,
				`probe_ssl_earliest_cert_expiry ` + formatFloat(float64(p.certNotAfter.Unix()))},
			absent: []string{"probe_tls_version_info"},
			cli:    []string{"certificate signed by unknown authority", "failed in phase starttls (tls)"}},
		{name: "implicit TLS", module: "implicit", addr: p.implicit, success: true,
			metrics: []string{`probe_tls_version_info{version="TLS 1.3"} 1`, `probe_smtp_reply_code{phase="banner"} 220`},
			cli:     []string{"TLS handshake done", "S: 220 mx.probe.test ESMTP", "Probe succeeded"}},
		{name: "AUTH over STARTTLS", module: "auth", addr: p.submission, success: true,
			metrics: []string{`probe_smtp_reply_code{phase="auth"} 235`, `probe_smtp_extension_info{extension="AUTH"} 1`}, // inside TLS PLAIN is preferred
			cli:     []string{"C: AUTH PLAIN <redacted>", "S: 235 2.7.0 Authentication successful", "Probe succeeded"}},
		{name: "AUTH with a wrong password", module: "auth_wrong", addr: p.submission,
			metrics: []string{`probe_smtp_failure_info{phase="auth",reason="reply_5xx"} 1`, `probe_smtp_last_reply_code 535`,
				`probe_smtp_last_enhanced_status_info{code="5.7.8"} 1`},
			cli: []string{"C: AUTH PLAIN <redacted>", "S: 535 5.7.8 Error: authentication failed", "authentication credentials invalid"}},
		{name: "recipient rejected", module: "rcpt_reject", addr: p.plain,
			metrics: []string{`probe_smtp_failure_info{phase="rcpt",reason="reply_5xx"} 1`, `probe_smtp_last_reply_code 550`,
				`probe_smtp_last_enhanced_status_info{code="5.1.1"} 1`, `probe_smtp_reply_code{phase="quit"} 221`},
			cli: []string{"S: 550 5.1.1 <reject@probe.test>: Recipient address rejected: No such user here", "the mailbox does not exist"}},
		{name: "recipient deferred", module: "rcpt_defer", addr: p.plain,
			metrics: []string{`probe_smtp_failure_info{phase="rcpt",reason="reply_4xx"} 1`, `probe_smtp_last_reply_code 450`,
				`probe_smtp_last_enhanced_status_info{code="4.2.0"} 1`},
			cli: []string{"S: 450 4.2.0 <defer@probe.test>", "temporary failure"}},
		{name: "message over message_size_limit", module: "delivery", addr: p.small,
			metrics: []string{`probe_smtp_failure_info{phase="message",reason="reply_5xx"} 1`, `probe_smtp_last_reply_code 552`,
				`probe_smtp_last_enhanced_status_info{code="5.3.4"} 1`, `probe_smtp_message_size_limit_bytes 400`, `probe_smtp_reply_code{phase="data"} 354`},
			cli: []string{"S: 552 5.3.4 Error: message file too big", "the message is too big for the system"}},
		{name: "open relay check against a closed relay", module: "open_relay", addr: p.plain, success: true,
			metrics: []string{`probe_smtp_reply_code{phase="rcpt"} 554`, `probe_smtp_reply_code{phase="rset"} 250`},
			cli:     []string{"S: 554 5.7.1 <relay-test@example.net>: Relay access denied", "C: RSET", "Probe succeeded"}},
		{name: "open relay check against an accepting rcpt", module: "open_relay_accepting", addr: p.plain,
			metrics: []string{`probe_smtp_failure_info{phase="rcpt",reason="expectation"} 1`, `probe_smtp_last_reply_code 250`},
			cli:     []string{"failed in phase rcpt (expectation)", "expected a 5xx reply, got 250"}},
		{name: "STARTTLS required before MAIL", module: "starttls_required", addr: p.submission, success: true,
			metrics: []string{`probe_smtp_reply_code{phase="mail"} 530`},
			cli:     []string{"S: 530 5.7.0 Must issue a STARTTLS command first", "Probe succeeded"}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			code, body := e.Get(t, "/probe?"+url.Values{"target": {sc.addr}, "module": {sc.module}}.Encode())
			if code != 200 {
				t.Fatalf("/probe: %d %s", code, body)
			}
			wantSuccess := "probe_success 0"
			if sc.success {
				wantSuccess = "probe_success 1"
			}
			for _, m := range append([]string{wantSuccess}, sc.metrics...) {
				if !strings.Contains(body, m+"\n") {
					t.Errorf("/probe lacks %q:\n%s", m, body)
				}
			}
			for _, m := range sc.absent {
				if strings.Contains(body, m) {
					t.Errorf("/probe has %q:\n%s", m, body)
				}
			}
			exit, out := runProbeCLI(t, sc.addr, "--module="+sc.module, "--config.file="+conf)
			if wantExit := map[bool]int{true: 0, false: 2}[sc.success]; exit != wantExit {
				t.Errorf("probe command exit %d, want %d:\n%s", exit, wantExit, out)
			}
			for _, l := range sc.cli {
				if !strings.Contains(out, l) {
					t.Errorf("probe command output lacks %q:\n%s", l, out)
				}
			}
		})
	}

	t.Run("postscreen greet pause", func(t *testing.T) {
		start := time.Now()
		code, body := e.Get(t, "/probe?target="+p.postscreen+"&module=postscreen")
		if code != 200 || !strings.Contains(body, "probe_success 1\n") {
			t.Fatalf("/probe: %d\n%s", code, body)
		}
		if d, _ := metricValue(body, `probe_smtp_phase_duration_seconds{phase="banner"}`); d < 1.5 {
			t.Errorf("banner took %.2fs: postscreen's 2s greet pause was not waited out", d)
		}
		// The probe command too; postscreen now knows the client (PASS OLD).
		if exit, out := runProbeCLI(t, p.postscreen, "--module=postscreen", "--config.file="+conf); exit != 0 || !strings.Contains(out, "Probe succeeded") {
			t.Errorf("probe command through postscreen: exit %d\n%s", exit, out)
		}
		log := p.maillog()
		if strings.Contains(log, "PREGREET") || !strings.Contains(log, "PASS NEW [127.0.0.1]") {
			t.Errorf("postscreen did not pass the probe cleanly after %s:\n%s", time.Since(start), grep(log, "postscreen"))
		}
	})

	t.Run("no secret anywhere", func(t *testing.T) {
		_, dbg := e.Get(t, "/probe?target="+p.submission+"&module=auth&debug=true")
		_, dbgWrong := e.Get(t, "/probe?target="+p.submission+"&module=auth_wrong&debug=true")
		_, cfg := e.Get(t, "/config")
		_, metrics := e.Get(t, "/metrics")
		_, cli := runProbeCLI(t, p.submission, "--module=auth", "--config.file="+conf)
		for name, text := range map[string]string{"debug output": dbg, "debug output (wrong password)": dbgWrong, "/config": cfg,
			"/metrics": metrics, "probe command": cli, "exporter log": e.Log()} {
			for _, secret := range []string{saslPassword, "not-the-password", b64(saslPassword), b64("\x00" + saslUser + "\x00not-the-password")} {
				if strings.Contains(text, secret) {
					t.Errorf("%s contains the secret %q", name, secret)
				}
			}
		}
		if !strings.Contains(dbg, "<redacted>") || !strings.Contains(dbg, "S: 235") {
			t.Errorf("debug transcript of AUTH:\n%s", dbg)
		}
		if !strings.Contains(e.Log(), `reason=reply_5xx`) {
			t.Errorf("the exporter did not log the failed probe at debug level:\n%s", e.Log())
		}
	})
}

// TestPostfixDelivery: full DATA delivery lands in the mailbox, found by its
// Message-ID; two probes deliver two different messages, none lost or doubled.
func TestPostfixDelivery(t *testing.T) {
	p := startPostfix(t)
	conf := exporterConfig(t, p)
	e := testenv.StartExporter(t, binary, "--config.file="+conf)
	idRe := regexp.MustCompile(`C: Message-ID: (<[^>]+>)`)
	var ids []string
	_, dbg := e.Get(t, "/probe?target="+p.plain+"&module=delivery&debug=true")
	if m := idRe.FindStringSubmatch(dbg); m != nil && strings.Contains(dbg, "probe_success 1") {
		ids = append(ids, m[1])
	} else {
		t.Fatalf("/probe delivery:\n%s", dbg)
	}
	exit, out := runProbeCLI(t, p.plain, "--module=delivery", "--config.file="+conf)
	if m := idRe.FindStringSubmatch(out); m != nil && exit == 0 {
		ids = append(ids, m[1])
	} else {
		t.Fatalf("probe command delivery (exit %d):\n%s", exit, out)
	}
	if ids[0] == ids[1] {
		t.Fatalf("both probes used Message-ID %s", ids[0])
	}
	deadline := time.Now().Add(20 * time.Second)
	var found map[string]int
	for time.Now().Before(deadline) {
		found = map[string]int{}
		entries, _ := os.ReadDir(p.maildir())
		for _, ent := range entries {
			b, err := os.ReadFile(filepath.Join(p.maildir(), ent.Name()))
			if err != nil {
				continue
			}
			for _, m := range regexp.MustCompile(`(?mi)^Message-ID: (<[^>]+>)\r?$`).FindAllStringSubmatch(string(b), -1) {
				found[m[1]]++
			}
		}
		if len(entries) >= 2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(found) != 2 || found[ids[0]] != 1 || found[ids[1]] != 1 {
		t.Errorf("mailbox holds %v, want exactly one of each of %v\nmaillog:\n%s", found, ids, p.maillog())
	}
}

func grep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
