package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// shardFiles are the shipped per-shard Prometheus configs, in shard order.
func shardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(repoFile("prometheus", "prometheus-shard-*.yml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least two prometheus/prometheus-shard-N.yml, found %v (%v)", files, err)
	}
	sort.Strings(files)
	for i, f := range files {
		if want := fmt.Sprintf("prometheus-shard-%d.yml", i); filepath.Base(f) != want {
			t.Fatalf("shard files %v: want %s at %d", files, want, i)
		}
	}
	return files
}

// TestShardConfigsAgree: every shard's config is valid, hashes with modulus
// the number of shard files, keeps its own number, and differs from shard
// 0's only in that number.
func TestShardConfigsAgree(t *testing.T) {
	files := shardFiles(t)
	type relabel struct {
		SourceLabels []string `yaml:"source_labels"`
		Modulus      int
		Regex        string
		Action       string
	}
	var conf0 string
	for i, f := range files {
		promtool(t, "", "check", "config", f)
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Global struct {
				ExternalLabels map[string]string `yaml:"external_labels"`
			}
			ScrapeConfigs []struct {
				JobName        string    `yaml:"job_name"`
				RelabelConfigs []relabel `yaml:"relabel_configs"`
			} `yaml:"scrape_configs"`
		}
		if err := yaml.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := c.Global.ExternalLabels["shard"]; got != strconv.Itoa(i) {
			t.Errorf("%s: external label shard=%q, want %d", f, got, i)
		}
		for _, job := range c.ScrapeConfigs {
			var mod, keep int
			for j, r := range job.RelabelConfigs {
				if r.Action != "hashmod" {
					continue
				}
				mod++
				if r.Modulus != len(files) {
					t.Errorf("%s job %s: modulus %d, want %d (the number of shard files)", f, job.JobName, r.Modulus, len(files))
				}
				if j+1 < len(job.RelabelConfigs) {
					if k := job.RelabelConfigs[j+1]; k.Action == "keep" && k.Regex == strconv.Itoa(i) {
						keep++
					}
				}
			}
			if mod != 1 || keep != 1 {
				t.Errorf("%s job %s: %d hashmod and %d keep of shard %d, want one hashmod followed by its keep", f, job.JobName, mod, keep, i)
			}
		}
		// Apart from the shard number, the files are the same.
		norm := regexp.MustCompile(`(?m)(regex: |shard: |shard-|shard )"?`+strconv.Itoa(i)+`\b"?`).ReplaceAllString(string(raw), "${1}N")
		if i == 0 {
			conf0 = norm
		} else if norm != conf0 {
			t.Errorf("%s differs from prometheus-shard-0.yml in more than the shard number", f)
		}
	}
}

// shardConfig is a shipped shard config made to run here: scraping every
// second, sending targets to the exporter at addr.
func shardConfig(t *testing.T, file, addr string) string {
	t.Helper()
	return shippedConfig(t, file,
		[2]string{"scrape_interval: 30s", "scrape_interval: 1s"},
		[2]string{"scrape_timeout: 10s", "scrape_timeout: 900ms"},
		[2]string{"127.0.0.1:9425", addr})
}

// startPrometheus runs Prometheus with conf written into its own directory
// (with the rules file and the file_sd targets beside it) on a free
// loopback port until the test ends, and returns its address.
func startPrometheus(t *testing.T, bin, name, conf, targetsYAML string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Join(dir, "smtp_targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(repoFile("prometheus", "smtp_exporter_rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "smtp_exporter_rules.yml"), string(rules))
	write(t, filepath.Join(dir, "smtp_targets", "targets.yml"), targetsYAML)
	confFile := filepath.Join(dir, "prometheus.yml")
	write(t, confFile, conf)
	addr := testenv.FreeAddr(t)
	runPrometheus(t, bin, name, dir, confFile, addr)
	return addr
}

// activeTarget is one entry of Prometheus's /api/v1/targets.
type activeTarget struct {
	Labels     map[string]string
	ScrapePool string
	Health     string
	LastError  string
}

// promTargets lists a Prometheus server's active targets and counts its
// dropped ones; ok is false when it did not answer.
func promTargets(addr string) (active []activeTarget, dropped int, ok bool) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/api/v1/targets")
	if err != nil {
		return nil, 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			ActiveTargets  []activeTarget
			DroppedTargets []json.RawMessage
		}
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
		return nil, 0, false
	}
	return r.Data.ActiveTargets, len(r.Data.DroppedTargets), true
}

// TestShardsScrapeEachTargetOnce runs the shipped shard configs in two real
// Prometheus servers against one exporter with twenty targets: every target
// is scraped by exactly one of them, and scraped successfully.
func TestShardsScrapeEachTargetOnce(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	testenv.Require(t, err == nil, "prometheus is not installed")
	files := shardFiles(t)

	const n = 20
	targets := make([]string, n)
	for i := range targets {
		targets[i] = smtptest.Start(t, smtptest.OK).Addr
	}
	conf := filepath.Join(t.TempDir(), "c.yml")
	write(t, conf, "modules:\n  default:\n    helo_name: probe.test\n")
	e := testenv.StartExporter(t, binary, "--config.file="+conf)
	targetsYAML := fmt.Sprintf("- targets: [%s]\n", strings.Join(targets, ", "))

	proms := make([]string, len(files))
	for i, f := range files {
		proms[i] = startPrometheus(t, promBin, fmt.Sprintf("prometheus-shard-%d", i), shardConfig(t, f, e.Addr), targetsYAML)
	}

	// Wait (bounded) until every shard has scraped each of its targets.
	type shardView struct {
		probe    map[string]string // target -> health, job smtp
		exporter int               // active smtp_exporter targets
		dropped  int
	}
	var views []shardView
	deadline := time.Now().Add(90 * time.Second)
	for {
		views = views[:0]
		settled := true
		for _, addr := range proms {
			active, dropped, ok := promTargets(addr)
			v := shardView{probe: map[string]string{}, dropped: dropped}
			for _, a := range active {
				switch a.ScrapePool {
				case "smtp":
					v.probe[a.Labels["target"]] = a.Health
					if a.Health != "up" {
						settled = false
					}
				case "smtp_exporter":
					v.exporter++
					if a.Health != "up" {
						settled = false
					}
				}
			}
			// Until file_sd has read the targets, a shard knows fewer.
			if !ok || len(v.probe)+v.exporter+v.dropped != n+1 {
				settled = false
			}
			views = append(views, v)
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shards did not scrape all their targets within 90s: %+v", views)
		}
		time.Sleep(500 * time.Millisecond)
	}

	scrapedBy := map[string][]int{}
	exporterScrapes := 0
	for i, v := range views {
		for target, health := range v.probe {
			if health != "up" {
				t.Errorf("shard %d: %s is %s", i, target, health)
			}
			scrapedBy[target] = append(scrapedBy[target], i)
		}
		exporterScrapes += v.exporter
		// Each server drops the other shards' targets: its share of the
		// twenty plus the exporter, kept or dropped.
		if got := len(v.probe) + v.exporter + v.dropped; got != n+1 {
			t.Errorf("shard %d: %d kept and %d dropped targets, want %d in all", i, len(v.probe)+v.exporter, v.dropped, n+1)
		}
		if len(v.probe) == 0 {
			t.Errorf("shard %d scrapes none of the %d targets", i, n)
		}
		t.Logf("shard %d scrapes %d of the %d targets", i, len(v.probe), n)
	}
	for _, target := range targets {
		if by := scrapedBy[target]; len(by) != 1 {
			t.Errorf("%s is scraped by shards %v, want exactly one", target, by)
		}
	}
	if len(scrapedBy) != n {
		t.Errorf("%d targets scraped, want %d: %v", len(scrapedBy), n, scrapedBy)
	}
	if exporterScrapes != 1 {
		t.Errorf("the exporter's own metrics are scraped by %d shards, want 1", exporterScrapes)
	}

	// Their data agree: through each server's /federate (which adds its
	// external labels), the successful probes over both shards are the
	// twenty targets, each once, each labelled with its shard.
	succeeded := map[string][]int{}
	for i, addr := range proms {
		var got map[string]bool
		for {
			got = federatedSuccesses(t, addr, i)
			if len(got) == len(views[i].probe) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		for target := range got {
			succeeded[target] = append(succeeded[target], i)
		}
	}
	for _, target := range targets {
		if by := succeeded[target]; len(by) != 1 {
			t.Errorf("probe_success 1 for %s is in shards %v, want exactly one", target, by)
		}
	}
}

// federatedSuccesses lists the targets with probe_success 1 in the series
// of job smtp that /federate of the Prometheus at addr answers, checking
// that each carries the external label shard="shard".
func federatedSuccesses(t *testing.T, addr string, shard int) map[string]bool {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/federate?match[]=" +
		url.QueryEscape(`probe_success{job="smtp"}`))
	if err != nil {
		t.Logf("federate: %v", err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "probe_success{") {
			continue
		}
		if !strings.Contains(line, fmt.Sprintf(`shard="%d"`, shard)) {
			t.Errorf("shard %d: federated series without its external label: %s", shard, line)
		}
		m := regexp.MustCompile(`target="([^"]*)".* 1 \d+$`).FindStringSubmatch(line)
		if m != nil {
			out[m[1]] = true
		}
	}
	return out
}
