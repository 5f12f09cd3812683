package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// TestAlertRulesOnRealProbes (issue 10): a real Prometheus evaluates the
// shipped rules on real probes of one server that refuses every recipient
// with 550. The open_relay module expects that refusal, so its probes
// succeed while its 5xx counter rises on every scrape: no alert, not even a
// pending one, may name it. The rcpt module needs the recipient accepted:
// SMTPDown and SMTPPermanentFailures are pending for it.
func TestAlertRulesOnRealProbes(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	testenv.Require(t, err == nil, "prometheus is not installed")
	srv := smtptest.Start(t, smtptest.RejectRcpt)
	conf := filepath.Join(t.TempDir(), "c.yml")
	write(t, conf, `modules:
  open_relay:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [relay-test@elsewhere.test]
    expect_reply: {rcpt: 5xx}
  rcpt:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [nobody@probe.test]
`)
	e := testenv.StartExporter(t, binary, "--config.file="+conf)
	promAddr := startRulesPrometheus(t, promBin, probeJob("smtp_open_relay", "open_relay", e.Addr, srv.Addr)+
		probeJob("smtp_rcpt", "rcpt", e.Addr, srv.Addr))

	// Sync point 1: the open-relay check has succeeded on scrapes in which
	// its 5xx counter rose, and the refusal's alerts are pending.
	waitFor := func(query string, want float64) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, ok := promQuery(promAddr, query)
			if ok && got >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v (found: %t), want at least %v", query, got, ok, want)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	relay := fmt.Sprintf(`target=%q,module="open_relay"`, srv.Addr)
	refusal := fmt.Sprintf(`target=%q,module="rcpt"`, srv.Addr)
	waitFor(`min_over_time(probe_success{`+relay+`}[1m])`, 1)
	waitFor(`increase(probe_smtp_replies_total{class="5xx",`+relay+`}[1m])`, 3)
	waitFor(`count(ALERTS{alertname="SMTPDown",`+refusal+`})`, 1)
	waitFor(`count(ALERTS{alertname="SMTPPermanentFailures",phase="rcpt",reason="reply_5xx",`+refusal+`})`, 1)

	// Sync point 2: every rule group has been evaluated again since.
	seen := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for !rulesEvaluatedSince(promAddr, seen) {
		if time.Now().After(deadline) {
			t.Fatal("the rule groups were not evaluated again within 60s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n, ok := promQuery(promAddr, `count(ALERTS{`+relay+`})`); ok {
		t.Errorf("%v alerts pending or firing for the healthy open-relay check", n)
		if list, err := promGet(promAddr, "/api/v1/query?query=ALERTS"); err == nil {
			t.Logf("ALERTS: %s", list)
		}
	}
}

// startRulesPrometheus runs a Prometheus that scrapes jobs every second and
// evaluates the shipped rules every second, until the test ends; it returns
// its address.
func startRulesPrometheus(t *testing.T, promBin, jobs string) string {
	t.Helper()
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	confFile := filepath.Join(dir, "prometheus.yml")
	write(t, confFile, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
%s`, repoFile("prometheus", "smtp_exporter_rules.yml"), jobs))
	promtool(t, "", "check", "config", confFile)
	runPrometheus(t, promBin, "prometheus", dir, confFile, addr)
	return addr
}

// rulesEvaluatedSince reports whether every rule group of the Prometheus at
// addr was last evaluated after since.
func rulesEvaluatedSince(addr string, since time.Time) bool {
	body, err := promGet(addr, "/api/v1/rules")
	if err != nil {
		return false
	}
	var r struct {
		Status string
		Data   struct {
			Groups []struct {
				Name           string
				LastEvaluation time.Time `json:"lastEvaluation"`
			}
		}
	}
	if json.Unmarshal(body, &r) != nil || r.Status != "success" || len(r.Data.Groups) == 0 {
		return false
	}
	for _, g := range r.Data.Groups {
		if !g.LastEvaluation.After(since) {
			return false
		}
	}
	return true
}

// promGet fetches a path of the Prometheus HTTP API.
func promGet(addr, path string) ([]byte, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		return nil, fmt.Errorf("asking prometheus for %s: %w", path, err)
	}
	defer resp.Body.Close()
	var b json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		return nil, fmt.Errorf("reading prometheus's answer to %s: %w", path, err)
	}
	return b, nil
}
