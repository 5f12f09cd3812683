package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// vantageFile is a file of the several-vantage-points setup.
func vantageFile(name string) string { return repoFile("prometheus", "vantages", name) }

// agentFiles are the shipped per-vantage agent configs, by vantage name.
func agentFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(vantageFile("agent-*.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least two prometheus/vantages/agent-NAME.yml, found %v (%v)", files, err)
	}
	agents := map[string]string{}
	for _, f := range files {
		agents[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "agent-"), ".yml")] = f
	}
	return agents
}

// TestVantageRules: the central rules load, their promtool unit tests pass,
// every alert is well formed, fires in a test and stays silent in the
// healthy one (as TestAlertRules checks the exporter's rules).
func TestVantageRules(t *testing.T) {
	checkAlertRules(t, vantageFile("vantage_rules.yml"), vantageFile("*_test.yml"))
}

// TestVantageConfigsAgree: the central and agent configs are valid; each
// agent's external label vantage is the name of its file, and apart from
// that name the agents' files are the same (same targets, jobs, modules:
// the central rules count vantages per job, target and module).
func TestVantageConfigsAgree(t *testing.T) {
	promtool(t, "", "check", "config", vantageFile("central.yml"))
	var conf0, name0 string
	for name, f := range agentFiles(t) {
		promtool(t, "", "check", "config", f)
		raw := readFile(t, f)
		var c struct {
			Global struct {
				ExternalLabels map[string]string `yaml:"external_labels"`
			}
			RuleFiles   []string `yaml:"rule_files"`
			RemoteWrite []struct {
				URL string
			} `yaml:"remote_write"`
		}
		if err := yaml.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := c.Global.ExternalLabels["vantage"]; got != name {
			t.Errorf("%s: external label vantage=%q, want %q", f, got, name)
		}
		if len(c.RuleFiles) > 0 {
			t.Errorf("%s: an agent evaluates no rules, yet it lists %v", f, c.RuleFiles)
		}
		if len(c.RemoteWrite) != 1 || !strings.HasSuffix(c.RemoteWrite[0].URL, "/api/v1/write") {
			t.Errorf("%s: remote_write %v, want one to the central /api/v1/write", f, c.RemoteWrite)
		}
		norm := regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).ReplaceAllString(raw, "NAME")
		if conf0 == "" {
			conf0, name0 = norm, name
		} else if norm != conf0 {
			t.Errorf("agent-%s.yml differs from agent-%s.yml in more than the vantage name", name, name0)
		}
	}
}

// shippedConfig is a shipped config file made to run here: each
// replacement's old text must be in it.
func shippedConfig(t *testing.T, file string, replacements ...[2]string) string {
	t.Helper()
	conf := readFile(t, file)
	for _, r := range replacements {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("%s no longer has %q", file, r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	return conf
}

// startPrometheusWith runs Prometheus with conf and the given files beside
// it (name -> content) and flags, on a free loopback port until the test
// ends; it returns its address.
func startPrometheusWith(t *testing.T, bin, name, conf string, files map[string]string, flags ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	for f, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, f), content)
	}
	confFile := filepath.Join(dir, "prometheus.yml")
	write(t, confFile, conf)
	promtool(t, "", "check", "config", confFile)
	addr := testenv.FreeAddr(t)
	runPrometheus(t, bin, name, dir, confFile, addr, flags...)
	return addr
}

// TestVantagesQuorum runs the several-vantage-points setup for real: two
// exporters as two vantage points, each with its shipped Prometheus agent
// remote-writing to the central Prometheus with the shipped rules. The
// target is a name, which each vantage's exporter resolves with its own DNS
// server: from the first vantage it is the fake SMTP server on 127.0.0.1,
// from the second 127.0.0.2, where nothing listens (that path cannot reach
// it). Through the central HTTP API: the series of both vantages arrive,
// each with its vantage label; while one vantage fails only the warning is
// active and the quorum alert never was; when the server stops, both fail
// and the quorum alert is active (pending: its for: is 5 minutes, which
// the promtool tests cover).
func TestVantagesQuorum(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	testenv.Require(t, err == nil, "prometheus is not installed")
	agents := agentFiles(t)
	names := make([]string, 0, len(agents))
	for n := range agents {
		names = append(names, n)
	}
	sort.Strings(names)
	reaches, cut := names[0], names[1]

	smtpAddr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(smtpAddr)
	target := "mx.vantage.test:" + port
	resolvesTo := map[string]string{reaches: "127.0.0.1", cut: "127.0.0.2"}

	start := time.Now()
	central := startPrometheusWith(t, promBin, "central",
		shippedConfig(t, vantageFile("central.yml"), [2]string{"evaluation_interval: 30s", "evaluation_interval: 1s"}),
		map[string]string{"vantage_rules.yml": readFile(t, vantageFile("vantage_rules.yml"))},
		"--web.enable-remote-write-receiver")
	for _, name := range []string{reaches, cut} {
		dns := dnstest.Start(t, dnstest.Zone{Records: map[string][]string{"mx.vantage.test. A": {resolvesTo[name]}}})
		conf := filepath.Join(t.TempDir(), name+".yml")
		write(t, conf, fmt.Sprintf("modules:\n  default:\n    helo_name: probe.test\n    resolver: %s\n", dns.Addr))
		e := testenv.StartExporter(t, binary, "--config.file="+conf)
		startPrometheusWith(t, promBin, "agent-"+name,
			shippedConfig(t, agents[name],
				[2]string{"scrape_interval: 30s", "scrape_interval: 1s"},
				[2]string{"scrape_timeout: 10s", "scrape_timeout: 900ms"},
				[2]string{"127.0.0.1:9425", e.Addr},
				[2]string{"http://prometheus-central.example.org:9090/api/v1/write", "http://" + central + "/api/v1/write"}),
			map[string]string{"smtp_targets/test.yml": fmt.Sprintf("- targets: [%q]\n", target)},
			"--enable-feature=agent")
	}

	check := fmt.Sprintf(`job="smtp",target=%q,module="default"`, target)

	t.Run("one vantage fails", func(t *testing.T) {
		// The server lives as long as this subtest.
		if _, err := smtptest.StartOn(t, smtptest.OK, smtpAddr); err != nil {
			t.Fatal(err)
		}
		waitCentral(t, central, fmt.Sprintf(`probe_success{%s,vantage=%q}`, check, reaches), 1)
		waitCentral(t, central, fmt.Sprintf(`probe_success{%s,vantage=%q}`, check, cut), 0)
		waitCentral(t, central, fmt.Sprintf(`probe_smtp_failure_info{%s,vantage=%q,phase="connect",reason="connect"}`, check, cut), 1)
		for _, name := range []string{reaches, cut} {
			waitCentral(t, central, fmt.Sprintf(`up{job="smtp_exporter",vantage=%q}`, name), 1)
		}
		waitCentral(t, central, `count(probe_success{`+check+`})`, 2)
		waitCentral(t, central, `job_target_module:smtp_vantages_failing:count{`+check+`}`, 1)
		waitCentral(t, central, `job_target_module:smtp_vantages:count{`+check+`}`, 2)
		waitCentral(t, central, `count(ALERTS{alertname="SMTPDownFromSomeVantages",severity="warning",`+check+`})`, 1)
		absentCentral(t, central, `count(probe_success{vantage=""})`)
		absentCentral(t, central, `count_over_time(ALERTS{alertname="SMTPDownFromMostVantages"}[10m])`)
		if !t.Failed() {
			t.Logf("both vantages reported, and only the warning was active, %s after the start", time.Since(start).Round(time.Second))
		}
	})
	if t.Failed() {
		return
	}

	t.Run("every vantage fails", func(t *testing.T) {
		phase := time.Now()
		waitCentral(t, central, fmt.Sprintf(`probe_success{%s,vantage=%q}`, check, reaches), 0)
		waitCentral(t, central, `job_target_module:smtp_vantages_failing:count{`+check+`}`, 2)
		waitCentral(t, central, `count(ALERTS{alertname="SMTPDownFromMostVantages",severity="critical",`+check+`})`, 1)
		absentCentral(t, central, `ALERTS{alertname="SMTPDownFromSomeVantages"}`)
		if !t.Failed() {
			t.Logf("the quorum alert was active %s after the server stopped", time.Since(phase).Round(time.Second))
		}
	})
}

// waitCentral waits (60s at most) until query on the Prometheus at addr
// answers want.
func waitCentral(t *testing.T, addr, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, ok := promQuery(addr, query)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("central: %s = %v (found: %t), want %v", query, got, ok, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// absentCentral checks, once every rule group of the Prometheus at addr has
// been evaluated again, that query has no result there.
func absentCentral(t *testing.T, addr, query string) {
	t.Helper()
	since := time.Now()
	deadline := since.Add(30 * time.Second)
	for !rulesEvaluatedSince(addr, since) {
		if time.Now().After(deadline) {
			t.Fatal("central: the rules were not evaluated again within 30s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if v, ok := promQuery(addr, query); ok {
		t.Errorf("central: %s = %v, want no result", query, v)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
