package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// TestWebConfigTLSAndBasicAuth runs the exporter behind --web.config.file
// with TLS and basic auth: no credentials get 401, wrong ones 401, plain
// HTTP nothing, the right ones the metrics.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.Valid(t, "127.0.0.1")
	_, certFile, keyFile := pki.WriteFiles(t, dir)
	hash, _ := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	web := writeFile(t, dir, "web.yml", "tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+
		"\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n")
	smtp := smtptest.Start(t, smtptest.OK)
	conf := writeFile(t, dir, "c.yml", "modules:\n  default:\n    helo_name: probe.test\n")

	addr := testenv.FreeAddr(t)
	cmd := exec.Command(binary, "--config.file="+conf, "--web.config.file="+web, "--web.listen-address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}}}
	do := func(scheme, path, user, pass string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, scheme+"://"+addr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, err := do("https", "/-/healthy", "prometheus", "scrape-pass"); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("exporter with TLS did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		name, scheme, path, user, pass string
		want                           int
	}{
		{"no credentials", "https", "/metrics", "", "", 401},
		{"wrong password", "https", "/probe?target=" + smtp.Addr, "prometheus", "nope", 401},
		{"right password", "https", "/probe?target=" + smtp.Addr, "prometheus", "scrape-pass", 200},
		{"right password, metrics", "https", "/metrics", "prometheus", "scrape-pass", 200},
	} {
		code, body, err := do(c.scheme, c.path, c.user, c.pass)
		if err != nil || code != c.want {
			t.Errorf("%s: %d %v", c.name, code, err)
		}
		if c.want == 200 && strings.Contains(c.path, "/probe") && !strings.Contains(body, "probe_success 1") {
			t.Errorf("%s: body %s", c.name, body)
		}
	}
	if code, _, err := do("http", "/metrics", "prometheus", "scrape-pass"); err == nil && code == 200 {
		t.Error("plain HTTP was served although the web config asks for TLS")
	}
}
