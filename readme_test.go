package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section is README's text from the heading that starts with title to the
// next heading of the same or a higher level.
func section(t *testing.T, text, title string) string {
	t.Helper()
	i := strings.Index(text, "\n"+title)
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	level := strings.Index(title, " ")
	rest := text[i+1+len(title):]
	for _, m := range regexp.MustCompile(`\n#{1,6} `).FindAllStringIndex(rest, -1) {
		if m[1]-m[0]-2 <= level {
			return title + rest[:m[0]]
		}
	}
	return title + rest
}

// codeBlocks returns the fenced code blocks of text, without their fences.
func codeBlocks(text string) []string {
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```[a-z]*\n(.*?)```").FindAllStringSubmatch(text, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// shellWords splits a command line as sh does for plain words, single
// quotes and a trailing &.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	quoted, inWord := false, false
	for _, r := range strings.TrimSuffix(strings.TrimSpace(line), "&") {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var (
	timingRe  = regexp.MustCompile(`^\[\s*\d+\.\d{3}s\]`)
	fromRe    = regexp.MustCompile(`from 127\.0\.0\.1:\d+`)
	secondsRe = regexp.MustCompile(`in \d+\.\d{3}s\.`)
)

// normalise takes the timings and the client's port out of a transcript.
func normalise(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		l = timingRe.ReplaceAllString(l, "[T]")
		l = fromRe.ReplaceAllString(l, "from 127.0.0.1:PORT")
		l = secondsRe.ReplaceAllString(l, "in Ts.")
		out[i] = strings.TrimRight(l, " ")
	}
	return out
}

// TestREADMEProbeExample runs the README's probe example as written: its
// smtp-sink command, then its probe command (on a free port instead of
// 2527), and compares the output and the exit code with the README's,
// timings and the client's port aside.
func TestREADMEProbeExample(t *testing.T) {
	_, err := exec.LookPath("smtp-sink")
	if err != nil {
		_, err = os.Stat("/usr/sbin/smtp-sink")
	}
	testenv.Require(t, err == nil, "smtp-sink (postfix) is not installed")
	quick := section(t, readme(t), "## Quick start")
	sinkLine := regexp.MustCompile(`(?m)^smtp-sink .*$`).FindString(quick)
	var example []string
	for _, b := range codeBlocks(quick) {
		if strings.HasPrefix(b, "$ ./smtp_exporter probe ") && strings.Contains(b, "$ echo $?") {
			example = strings.Split(strings.TrimSuffix(b, "\n"), "\n")
			break
		}
	}
	if sinkLine == "" || len(example) < 4 {
		t.Fatalf("the quick start has no smtp-sink command (%q) or no probe example with its exit code", sinkLine)
	}
	const readmeAddr = "127.0.0.1:2527"
	addr := testenv.FreeAddr(t)
	sink := shellWords(t, strings.ReplaceAll(sinkLine, readmeAddr, addr))
	if os.Getuid() != 0 { // -u is for root only, as the README says
		if i := slices.Index(sink, "-u"); i >= 0 {
			sink = slices.Delete(sink, i, i+2)
		}
	}
	cmd := exec.Command(sink[0], sink[1:]...)
	var sinkErr bytes.Buffer
	cmd.Stderr = &sinkErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink does not listen on %s: %v\n%s", addr, err, sinkErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	args := shellWords(t, strings.ReplaceAll(strings.TrimPrefix(example[0], "$ "), readmeAddr, addr))
	if args[0] != "./smtp_exporter" {
		t.Fatalf("the example runs %q", args[0])
	}
	probe := exec.Command(binary, args[1:]...)
	probe.Dir = t.TempDir() // no smtp_exporter.yml: the built-in default module
	out, err := probe.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	echo := slices.Index(example, "$ echo $?")
	if echo < 0 || echo+1 >= len(example) {
		t.Fatalf("no exit code after \"$ echo $?\" in %q", example)
	}
	wantCode, _ := strconv.Atoi(example[echo+1])
	if code := probe.ProcessState.ExitCode(); code != wantCode {
		t.Errorf("exit %d, the README says %d", code, wantCode)
	}
	want := normalise(strings.Split(strings.ReplaceAll(strings.Join(example[1:echo], "\n"), readmeAddr, addr), "\n"))
	got := normalise(strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"))
	if !slices.Equal(got, want) {
		t.Errorf("the probe example's output is not the README's\n got:\n%s\nwant (README):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestREADMEFlags: the README's Flags table has every flag of the exporter,
// and its probe command table every flag of the probe command.
func TestREADMEFlags(t *testing.T) {
	flags := section(t, readme(t), "## Flags")
	flagRe := regexp.MustCompile(`(?m)^ {2,6}(?:-h, )?--(?:\[no-\])?([a-z][a-z0-9.-]*)`)
	help := func(args ...string) string { // --help exits: run the binary
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out)
	}
	global, probeHelp := help("--help"), help("probe", "--help")
	for _, m := range flagRe.FindAllStringSubmatch(global, -1) {
		if name := m[1]; name != "help" && !strings.Contains(flags, "`--"+name+"`") && !strings.Contains(flags, "`--[no-]"+name+"`") {
			t.Errorf("the Flags table lacks --%s", name)
		}
	}
	for _, m := range flagRe.FindAllStringSubmatch(probeHelp, -1) {
		if name := m[1]; !strings.Contains(global, "--"+name) && !strings.Contains(global, "--[no-]"+name) &&
			!strings.Contains(flags, "`--"+name+"`") && !strings.Contains(flags, "`--[no-]"+name+"`") {
			t.Errorf("the probe command's table lacks --%s", name)
		}
	}
	if strings.Contains(global, "across /probe and /metrics") {
		t.Error("--probe.max-in-flight's help says it covers /metrics; the static targets have --static.concurrency")
	}
}

// TestREADMEProbeScrapeConfigs: every /probe scrape config the README shows
// sets the target and module labels that the alert rules and the dashboard
// match on.
func TestREADMEProbeScrapeConfigs(t *testing.T) {
	n := 0
	for _, b := range codeBlocks(readme(t)) {
		if !strings.Contains(b, "metrics_path: /probe") || !strings.Contains(b, "job_name") {
			continue
		}
		var jobs []struct {
			JobName  string `yaml:"job_name"`
			Relabels []struct {
				Source []string `yaml:"source_labels"`
				Target string   `yaml:"target_label"`
			} `yaml:"relabel_configs"`
		}
		if err := yaml.Unmarshal([]byte(b), &jobs); err != nil {
			t.Errorf("a README scrape config does not parse: %v\n%s", err, b)
			continue
		}
		for _, j := range jobs {
			n++
			set := map[string]string{}
			for _, r := range j.Relabels {
				set[r.Target] = strings.Join(r.Source, ",")
			}
			if set["target"] != "__param_target" || set["module"] != "__param_module" || set["__param_target"] != "__address__" {
				t.Errorf("README job %s does not set target from __param_target and module from __param_module: %v", j.JobName, set)
			}
		}
	}
	if n == 0 {
		t.Error("no /probe scrape config found in the README")
	}
}

// TestREADMEQuickStartVersion: where the quick start builds with plain go
// build, it says what --version shows without Go's VCS stamping, and
// points at make build.
func TestREADMEQuickStartVersion(t *testing.T) {
	quick := section(t, readme(t), "## Quick start")
	build := strings.Index(quick, "go build -o smtp_exporter .")
	if build < 0 {
		t.Fatal("the quick start does not build with go build")
	}
	next := quick[build:]
	if end := strings.Index(next, "\nRun all the tests"); end >= 0 {
		next = next[:end]
	}
	for _, want := range []string{"version devel", "make build"} {
		if !strings.Contains(next, want) {
			t.Errorf("the quick start's build step does not say %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join("examples", "rcpt.yml")); err != nil && strings.Contains(quick, "rcpt.yml") {
		t.Error("the quick start uses rcpt.yml, which is not in the repository")
	}
}
