package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigCheck(t *testing.T) {
	if code, out, errOut := runCLI("--config.check", "--config.file=example.yml"); code != 0 || !strings.Contains(out, "is valid") {
		t.Errorf("example.yml: exit %d, %q %q", code, out, errOut)
	}
	// Valid but unwise: DANE trusting the AD bit of a remote resolver.
	remote := writeFile(t, t.TempDir(), "remote.yml", "modules:\n  default:\n    tls: starttls\n    dane: true\n    resolver: 192.0.2.53:53\n")
	if code, out, errOut := runCLI("--config.check", "--config.file="+remote); code != 0 || !strings.Contains(out, "is valid") ||
		!strings.Contains(errOut, `warning: module "default" (dane): the AD bit of resolver 192.0.2.53:53, not on a loopback address`) {
		t.Errorf("remote resolver: exit %d, %q %q", code, out, errOut)
	}
	bad := writeFile(t, t.TempDir(), "bad.yml", "modules:\n  default:\n    helo_nam: x\n")
	code, _, errOut := runCLI("--config.check", "--config.file="+bad)
	if code == 0 || errOut != "smtp_exporter: config "+bad+":3: modules.default.helo_nam: unknown key: did you mean helo_name?\n" {
		t.Errorf("bad config: exit %d, stderr %q", code, errOut)
	}
}

// TestProbeCommandWithoutConfig: with no --config.file and no
// smtp_exporter.yml, the probe command uses the built-in default module.
func TestProbeCommandWithoutConfig(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI("probe", ok.Addr)
	if code != 0 || !strings.Contains(out, "C: EHLO ") || !strings.Contains(out, "Probe succeeded") || !strings.Contains(errOut, "built-in default module") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// An explicit file that is missing stays an error.
	if code, _, errOut := runCLI("probe", ok.Addr, "--config.file=smtp_exporter.yml"); code != 3 || !strings.Contains(errOut, "no such file") {
		t.Errorf("explicit missing file: exit %d, %q", code, errOut)
	}
}

func TestProbeCommand(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	busy := smtptest.Start(t, smtptest.Busy)
	dir := t.TempDir()
	conf := writeFile(t, dir, "c.yml", "modules:\n  default:\n    helo_name: probe.test\n    timeout: 3s\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"success", []string{"probe", ok.Addr, "--config.file=" + conf}, 0,
			[]string{"S: 220 fake.test ESMTP", "C: EHLO probe.test", "C: QUIT", "S: 221 2.0.0 Bye", "Probe succeeded"}, ""},
		{"failure explained", []string{"probe", busy.Addr, "--config.file=" + conf}, 2,
			[]string{"S: 421 #4.4.5 Too many connections", "banner: 421 4.4.5: temporary failure", "congested", "Probe FAILED", "failed in phase banner (reply_4xx)"}, ""},
		{"unknown module", []string{"probe", ok.Addr, "--module=nope", "--config.file=" + conf}, 3, nil, `unknown module "nope" (the modules are "default")`},
		{"bad target", []string{"probe", "mx.example.org:0", "--config.file=" + conf}, 3, nil, `port "0" is not a number`},
		{"bad config", []string{"probe", ok.Addr, "--config.file=" + filepath.Join(dir, "missing.yml")}, 3, nil, "no such file"},
		{"no target", []string{"probe", "--config.file=" + conf}, 3, nil, "required argument 'target' not provided"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr lacks %q: %q", tc.wantErr, errOut)
			}
		})
	}
}

var binary string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithExporter(m, &binary))
}

func TestServerEndpointsAndReload(t *testing.T) {
	smtp := smtptest.Start(t, smtptest.OK)
	dir := t.TempDir()
	good := "modules:\n  default:\n    helo_name: probe.test\n  sub:\n    tls: starttls\n    auth: {username: u, password: hunter2-secret, targets: [127.0.0.1]}\ntargets:\n  - target: " + smtp.Addr + "\n"
	conf := writeFile(t, dir, "c.yml", good)
	e := testenv.StartExporter(t, binary, "--config.file="+conf)

	if code, body := e.Get(t, "/"); code != 200 || !strings.Contains(body, "smtp_exporter") || !strings.Contains(body, `name="target"`) {
		t.Errorf("landing page: %d\n%s", code, body)
	}
	if code, body := e.Get(t, "/-/ready"); code != 200 {
		t.Errorf("ready: %d %s", code, body)
	}
	if code, body := e.Get(t, "/probe?target="+smtp.Addr); code != 200 || !strings.Contains(body, "probe_success 1") {
		t.Errorf("probe: %d\n%s", code, body)
	}
	code, body := e.Get(t, "/metrics")
	for _, want := range []string{`probe_success{module="default",target="` + smtp.Addr + `"} 1`, "smtp_exporter_build_info{", "go_goroutines ",
		"process_open_fds ", "smtp_exporter_config_last_reload_successful 1"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := e.Get(t, "/config"); code != 200 || strings.Contains(body, "hunter2-secret") || !strings.Contains(body, "<secret>") {
		t.Errorf("/config: %d\n%s", code, body)
	}
	if code, _ := e.Get(t, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d", code)
	}

	// A broken file: the reload fails, the old config keeps running.
	writeFile(t, dir, "c.yml", "modules:\n  default:\n    helo_name: [\n")
	if code, body := e.Post(t, "/-/reload"); code != 500 || !strings.Contains(body, "keeping the old one") {
		t.Errorf("bad reload: %d %q", code, body)
	}
	if _, body := e.Get(t, "/metrics"); !strings.Contains(body, "smtp_exporter_config_last_reload_successful 0") {
		t.Error("reload gauge not 0 after a failed reload")
	}
	if code, body := e.Get(t, "/probe?target="+smtp.Addr+"&module=sub"); code != 200 {
		t.Errorf("old config lost after a failed reload: %d %s", code, body)
	}

	// SIGHUP with a fixed file: the new module appears.
	writeFile(t, dir, "c.yml", strings.Replace(good, "modules:\n", "modules:\n  extra:\n    helo_name: extra.test\n", 1))
	e.Cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := e.Get(t, "/probe?target="+smtp.Addr+"&module=extra")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not load the new module (last status %d)", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, body := e.Get(t, "/metrics"); !strings.Contains(body, "smtp_exporter_config_last_reload_successful 1") {
		t.Error("reload gauge not back to 1")
	}
}

// TestServerLogsConfigWarnings: a valid but unwise module (DANE trusting a
// remote resolver's AD bit) is logged at warn level, at start and at every
// reload.
func TestServerLogsConfigWarnings(t *testing.T) {
	conf := writeFile(t, t.TempDir(), "c.yml", "modules:\n  default:\n    tls: starttls\n    dane: true\n    resolver: 192.0.2.53:53\n")
	e := testenv.StartExporter(t, binary, "--config.file="+conf)
	// The log arrives through a pipe, a moment after what it tells of.
	waitFor := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n := 0
			for _, line := range strings.Split(e.Log(), "\n") {
				if strings.Contains(line, "level=warn") && strings.Contains(line, "resolver 192.0.2.53:53, not on a loopback address") {
					n++
				}
			}
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d warnings at level warn, want %d:\n%s", n, want, e.Log())
			}
		}
	}
	waitFor(1)
	if code, body := e.Post(t, "/-/reload"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	waitFor(2)
}

// TestServerSIGTERM: an in-flight probe finishes, then the process exits 0.
func TestServerSIGTERM(t *testing.T) {
	tarpit := smtptest.Start(t, smtptest.Tarpit)
	conf := writeFile(t, t.TempDir(), "c.yml", "modules:\n  default:\n    helo_name: probe.test\n    timeout: 1s\n")
	e := testenv.StartExporter(t, binary, "--config.file="+conf)
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(e.Base + "/probe?target=" + tarpit.Addr)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{code: resp.StatusCode, body: string(b)}
	}()
	for deadline := time.Now().Add(5 * time.Second); tarpit.Accepted.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the probe never reached the tarpit")
		}
	}
	e.Cmd.Process.Signal(syscall.SIGTERM)
	a := <-got
	if a.err != nil || a.code != 200 || !strings.Contains(a.body, `probe_smtp_failure_info{phase="banner",reason="timeout"} 1`) {
		t.Errorf("in-flight probe: %v %d %s", a.err, a.code, a.body)
	}
	select {
	case err := <-e.Done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
		e.Done <- nil // for Cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("exporter did not exit after SIGTERM")
	}
}
