package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/collector"
)

// Helpers of TestAlertRules and TestDashboard (prometheus_test.go): what the
// rules, their promtool tests and the dashboard may name, and how they are
// read.

// metricNameRe finds the exporter's metric names in PromQL, in alert
// templates and in promtool test series.
var metricNameRe = regexp.MustCompile(`\b(?:probe|smtp_exporter)_[a-z_]+`)

// exportedMetrics is the exposition text the exporter really produces: the
// collector's golden files and a live /metrics answer with static targets.
func exportedMetrics(t *testing.T) string {
	t.Helper()
	var known strings.Builder
	golden, err := filepath.Glob(repoFile("collector", "testdata", "golden", "*.prom"))
	if err != nil || len(golden) == 0 {
		t.Fatalf("no golden exposition files found (%v)", err)
	}
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		known.Write(b)
	}
	e, _ := staticExporter(t)
	code, metrics := e.Get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics answered %d", code)
	}
	known.WriteString(metrics)
	return known.String()
}

// knownMetrics returns a check of metric names: a probe metric family of
// the exporter's table (collector.IsProbeFamily, which the golden files and
// the DANE and delivery tests exercise), or a sample line in exportedMetrics
// (the exporter's own metrics, Prometheus's up).
func knownMetrics(t *testing.T) func(name string) bool {
	t.Helper()
	exported := exportedMetrics(t)
	return func(name string) bool {
		return collector.IsProbeFamily(name) || regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`[{ ]`).MatchString(exported)
	}
}

// unknownMetricNames lists, sorted, the metric names in texts that known
// does not accept.
func unknownMetricNames(known func(string) bool, texts ...string) []string {
	missing := map[string]bool{}
	for _, text := range texts {
		for _, name := range metricNameRe.FindAllString(text, -1) {
			if !known(name) {
				missing[name] = true
			}
		}
	}
	names := make([]string, 0, len(missing))
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// annotationQueryRe finds the PromQL of an annotation template's query
// calls: printf's format string, quoted or raw.
var annotationQueryRe = regexp.MustCompile("printf (\"[^\"]*\"|`[^`]*`)")

// annotationQueries returns the PromQL queries an annotation template runs
// (its prose may say probe_policy and mean the config key).
func annotationQueries(text string) []string {
	var qs []string
	for _, m := range annotationQueryRe.FindAllStringSubmatch(text, -1) {
		qs = append(qs, m[1])
	}
	return qs
}

// alertRule is one alerting rule of a Prometheus rules file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadAlertRules reads the alerting rules (not the recording rules) of a
// rules file, in file order.
func loadAlertRules(t *testing.T, path string) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rules = append(rules, r)
			}
		}
	}
	return rules
}

// ruleTests is a promtool rule test file, as far as the checks need it.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadRuleTests(t *testing.T, path string) ruleTests {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rt ruleTests
	if err := yaml.Unmarshal(raw, &rt); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rt
}

// minAlertFor is the shortest `for:` an alert may have: one probe's bad
// answer (a scrape interval of up to a minute or two) must not page.
const minAlertFor = model.Duration(5 * time.Minute)

// lintAlertRule reports what is missing from one alerting rule: a severity
// an operator routes on, the summary and description, a `for:` that avoids
// flapping, and no alerting on the reply counters (issue 10: a healthy
// open-relay check gets a 5xx on every probe).
func lintAlertRule(r alertRule) []string {
	var problems []string
	switch r.Labels["severity"] {
	case "critical", "warning", "info":
	default:
		problems = append(problems, "severity label is not critical, warning or info")
	}
	for _, a := range []string{"summary", "description"} {
		if strings.TrimSpace(r.Annotations[a]) == "" {
			problems = append(problems, "no "+a+" annotation")
		}
	}
	if d, err := model.ParseDuration(r.For); err != nil || d < minAlertFor {
		problems = append(problems, "for: "+r.For+" is shorter than "+minAlertFor.String())
	}
	if strings.Contains(r.Expr, "probe_smtp_replies_total") {
		problems = append(problems, "alerts on probe_smtp_replies_total, which counts expected refusals too")
	}
	return problems
}

// dashPanel is a Grafana panel; a row carries its collapsed panels in Panels.
type dashPanel struct {
	ID      int
	Type    string
	Title   string
	GridPos struct{ X, Y, W, H int }
	Targets []struct{ Expr string }
	Panels  []dashPanel
}

// flattenPanels lists every panel, those inside collapsed rows included.
func flattenPanels(ps []dashPanel) []dashPanel {
	var all []dashPanel
	for _, p := range ps {
		all = append(all, p)
		all = append(all, flattenPanels(p.Panels)...)
	}
	return all
}

// gridProblems reports top-level panels outside Grafana's 24 columns or
// overlapping another.
func gridProblems(ps []dashPanel) []string {
	var problems []string
	for i, p := range ps {
		g := p.GridPos
		if g.X < 0 || g.Y < 0 || g.W <= 0 || g.H <= 0 || g.X+g.W > 24 {
			problems = append(problems, "panel "+p.Title+" is outside the grid")
		}
		for _, q := range ps[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				problems = append(problems, "panels "+q.Title+" and "+p.Title+" overlap")
			}
		}
	}
	return problems
}
