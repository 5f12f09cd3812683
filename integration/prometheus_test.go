package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	testenv.Require(t, err == nil, "promtool (Debian's prometheus package) is not installed")
	return p
}

func repoFile(parts ...string) string {
	return filepath.Join(append([]string{testenv.RepoRoot()}, parts...)...)
}

func promtool(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(requirePromtool(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules: the rules load, their promtool unit tests pass, every
// alert is well formed (lintAlertRule), proven to fire by a test and proven
// silent on the healthy checks of smtp_exporter_rules_healthy_test.yml, and
// rules and tests name only metrics the exporter exports.
func TestAlertRules(t *testing.T) {
	checkAlertRules(t, repoFile("prometheus", "smtp_exporter_rules.yml"), repoFile("prometheus", "*_test.yml"))
}

// checkAlertRules is TestAlertRules for one rules file and the promtool
// test files that testGlob matches (a *_healthy_test.yml among them).
func checkAlertRules(t *testing.T, rulesFile, testGlob string) {
	t.Helper()
	promtool(t, "", "check", "rules", rulesFile)
	testFiles, err := filepath.Glob(testGlob)
	if err != nil || len(testFiles) == 0 {
		t.Fatalf("no rule test files %s (%v)", testGlob, err)
	}
	for _, f := range testFiles {
		promtool(t, "", "test", "rules", f)
	}

	rules := loadAlertRules(t, rulesFile)
	if len(rules) == 0 {
		t.Fatal("no alerting rules")
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		for _, p := range lintAlertRule(r) {
			t.Errorf("alert %s: %s", r.Alert, p)
		}
	}

	// Each alert fires in some test; the healthy file evaluates every
	// alert at each of its eval times and expects silence.
	fires := map[string]bool{}
	healthy := 0
	for _, f := range testFiles {
		rt := loadRuleTests(t, f)
		isHealthy := strings.HasSuffix(f, "_healthy_test.yml")
		for _, tc := range rt.Tests {
			evaluated := map[string]map[string]bool{}
			for _, a := range tc.AlertRuleTest {
				if !seen[a.Alertname] {
					t.Errorf("%s tests alert %s, which the rules do not define", filepath.Base(f), a.Alertname)
				}
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
					if isHealthy {
						t.Errorf("%s expects %s to fire at %s: a healthy check fires nothing", filepath.Base(f), a.Alertname, a.EvalTime)
					}
				}
				if evaluated[a.EvalTime] == nil {
					evaluated[a.EvalTime] = map[string]bool{}
				}
				evaluated[a.EvalTime][a.Alertname] = true
			}
			if !isHealthy {
				continue
			}
			healthy++
			for at, names := range evaluated {
				for _, r := range rules {
					if !names[r.Alert] {
						t.Errorf("%s does not check that %s stays silent at %s", filepath.Base(f), r.Alert, at)
					}
				}
			}
		}
	}
	if healthy == 0 {
		t.Errorf("no healthy rule test (*_healthy_test.yml) among %v", testFiles)
	}
	for _, r := range rules {
		if !fires[r.Alert] {
			t.Errorf("no rule test shows alert %s firing", r.Alert)
		}
	}

	// Rules, annotation queries and test series name real metrics only.
	var texts []string
	for _, r := range rules {
		texts = append(texts, r.Expr)
		for _, a := range r.Annotations {
			texts = append(texts, annotationQueries(a)...)
		}
	}
	for _, f := range testFiles {
		for _, tc := range loadRuleTests(t, f).Tests {
			for _, in := range tc.InputSeries {
				texts = append(texts, in.Series)
			}
		}
	}
	if missing := unknownMetricNames(knownMetrics(t), texts...); len(missing) > 0 {
		t.Errorf("the rules or their tests name metrics the exporter does not export: %v", missing)
	}
}

func TestPrometheusConfigsCheck(t *testing.T) {
	for _, f := range []string{"prometheus.yml", "prometheus-sharded.yml"} {
		promtool(t, "", "check", "config", repoFile("prometheus", f))
	}
}

// staticExporter runs the exporter with static targets: a good server, a
// busy one and one that rejects the recipient.
func staticExporter(t *testing.T) (*testenv.Exporter, map[string]*smtptest.Server) {
	srv := map[string]*smtptest.Server{
		"ok":     smtptest.Start(t, smtptest.OK),
		"busy":   smtptest.Start(t, smtptest.Busy),
		"reject": smtptest.Start(t, smtptest.RejectRcpt),
	}
	conf := fmt.Sprintf(`modules:
  default:
    helo_name: probe.test
  rcpt:
    helo_name: probe.test
    mail_from: probe@probe.test
    rcpt_to: [nobody@probe.test]
targets:
  - target: %s
  - target: %s
  - target: %s
    module: rcpt
`, srv["ok"].Addr, srv["busy"].Addr, srv["reject"].Addr)
	path := filepath.Join(t.TempDir(), "c.yml")
	write(t, path, conf)
	return testenv.StartExporter(t, binary, "--config.file="+path), srv
}

// TestPromtoolCheckMetrics lints real /probe and /metrics answers.
func TestPromtoolCheckMetrics(t *testing.T) {
	requirePromtool(t)
	e, srv := staticExporter(t)
	for _, path := range []string{"/metrics", "/probe?target=" + srv["ok"].Addr, "/probe?target=" + srv["busy"].Addr,
		"/probe?module=rcpt&target=" + srv["reject"].Addr} {
		code, body := e.Get(t, path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if out := strings.TrimSpace(promtool(t, body, "check", "metrics")); out != "" {
			t.Errorf("promtool check metrics on %s reports:\n%s", path, out)
		}
	}
}

// TestDashboard: the Grafana dashboard is valid JSON, its panels fit the
// grid without overlapping, every PromQL expression parses, every metric it
// names is exported, and every metric an alert rule reads has a panel.
func TestDashboard(t *testing.T) {
	requirePromtool(t)
	raw, err := os.ReadFile(repoFile("grafana", "smtp_exporter.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string
		UID        string
		Panels     []dashPanel
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	panels := flattenPanels(dash.Panels)
	if dash.Title == "" || dash.UID == "" || len(panels) < 8 {
		t.Fatalf("dashboard title %q uid %q with %d panels", dash.Title, dash.UID, len(panels))
	}
	for _, p := range gridProblems(dash.Panels) {
		t.Error(p)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$target", ".*", "$module", ".*", "$job", ".*")
	var exprs []string
	ids := map[int]bool{}
	for _, p := range panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, vars.Replace(q.Expr))
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		fmt.Fprintf(&rules, "      - record: dashboard:expr%d\n        expr: %q\n", i, e)
	}
	rulesFile := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	write(t, rulesFile, rules.String())
	promtool(t, "", "check", "rules", rulesFile) // parses every expression

	// Every metric named, in panels and in variable queries, is exported.
	texts := append([]string{}, exprs...)
	for _, v := range dash.Templating.List {
		texts = append(texts, v.Definition)
	}
	if missing := unknownMetricNames(knownMetrics(t), texts...); len(missing) > 0 {
		t.Errorf("the dashboard names metrics the exporter does not export: %v", missing)
	}

	// Every metric an alert reads is on the dashboard.
	shown := map[string]bool{}
	for _, e := range exprs {
		for _, name := range metricNameRe.FindAllString(e, -1) {
			shown[name] = true
		}
	}
	for _, r := range loadAlertRules(t, repoFile("prometheus", "smtp_exporter_rules.yml")) {
		for _, name := range metricNameRe.FindAllString(r.Expr, -1) {
			if !shown[name] {
				t.Errorf("alert %s reads %s, which no dashboard panel shows", r.Alert, name)
			}
		}
	}
}

// TestPrometheusScrapesExporter: a real Prometheus scrapes the exporter both
// ways, and its query API sees success, failure, the 5xx code and the
// growing 5xx counter.
func TestPrometheusScrapesExporter(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	testenv.Require(t, err == nil, "prometheus is not installed")
	e, srv := staticExporter(t)
	dir := t.TempDir()
	promAddr := testenv.FreeAddr(t)
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
%s%s  - job_name: smtp_exporter
    static_configs:
      - targets: [%q]
`, repoFile("prometheus", "smtp_exporter_rules.yml"),
		probeJob("smtp_probe", "default", e.Addr, srv["ok"].Addr, srv["busy"].Addr),
		probeJob("smtp_probe_rcpt", "rcpt", e.Addr, srv["reject"].Addr), e.Addr)
	confFile := filepath.Join(dir, "prometheus.yml")
	write(t, confFile, conf)
	promtool(t, "", "check", "config", confFile)

	runPrometheus(t, promBin, "prometheus", dir, confFile, promAddr)

	checks := []struct {
		query string
		want  float64
	}{
		{fmt.Sprintf(`probe_success{job="smtp_probe",target=%q}`, srv["ok"].Addr), 1},
		{fmt.Sprintf(`probe_success{job="smtp_probe",target=%q}`, srv["busy"].Addr), 0},
		{fmt.Sprintf(`probe_smtp_last_reply_code{job="smtp_probe",target=%q}`, srv["busy"].Addr), 421},
		{fmt.Sprintf(`probe_success{job="smtp_probe_rcpt",target=%q}`, srv["reject"].Addr), 0},
		{fmt.Sprintf(`probe_smtp_last_reply_code{job="smtp_probe_rcpt",target=%q}`, srv["reject"].Addr), 550},
		{fmt.Sprintf(`probe_smtp_failure_info{job="smtp_probe_rcpt",target=%q,phase="rcpt",reason="reply_5xx"}`, srv["reject"].Addr), 1},
		{fmt.Sprintf(`increase(probe_smtp_replies_total{job="smtp_probe_rcpt",class="5xx",target=%q}[1m]) > bool 0`, srv["reject"].Addr), 1},
		{fmt.Sprintf(`probe_success{job="smtp_exporter",module="default",target=%q}`, srv["ok"].Addr), 1},
		{fmt.Sprintf(`probe_success{job="smtp_exporter",module="rcpt",target=%q}`, srv["reject"].Addr), 0},
		{fmt.Sprintf(`increase(probe_smtp_replies_total{job="smtp_exporter",class="5xx",target=%q}[1m]) > bool 0`, srv["reject"].Addr), 1},
		{`smtp_exporter_config_last_reload_successful{job="smtp_exporter"}`, 1},
		{`count(ALERTS{alertname="SMTPProbeFailing"}) > bool 0`, 1},
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, c := range checks {
		var got float64
		var ok bool
		for {
			got, ok = promQuery(promAddr, c.query)
			if ok && got == c.want {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s = %v (found: %t), want %v", c.query, got, ok, c.want)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// probeJob is a scrape job sending targets to the exporter's /probe with
// module, relabeled as prometheus/prometheus.yml does.
func probeJob(name, module, exporter string, targets ...string) string {
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = strconv.Quote(t)
	}
	return fmt.Sprintf(`  - job_name: %s
    metrics_path: /probe
    params: {module: [%s]}
    static_configs:
      - targets: [%s]
    relabel_configs:
      - {source_labels: [__address__], target_label: __param_target}
      - {source_labels: [__param_target], target_label: target}
      - {source_labels: [__param_target], target_label: instance}
      - {source_labels: [__param_module], target_label: module}
      - {target_label: __address__, replacement: %q}
`, name, module, strings.Join(quoted, ", "), exporter)
}

// promQuery runs an instant query and returns the first sample's value.
func promQuery(addr, query string) (float64, bool) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	var v float64
	_, err = fmt.Sscan(s, &v)
	return v, err == nil
}

// runPrometheus runs Prometheus on confFile with flags, its data in dir,
// listening on addr, until the test ends (SIGINT, then SIGKILL after 10s);
// its log is shown when the test failed.
func runPrometheus(t *testing.T, bin, name, dir, confFile, addr string, flags ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	storage := "--storage.tsdb.path="
	if slices.Contains(flags, "--enable-feature=agent") {
		storage = "--storage.agent.path=" // agent mode refuses the TSDB flags
	}
	cmd := exec.Command(bin, append([]string{"--config.file=" + confFile, storage + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--log.level=warn"}, flags...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}
