package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// gitOut runs git in dir and returns its trimmed output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// goflagsWithVCS is `go env GOFLAGS` with -buildvcs=auto in place of any
// -buildvcs flag.
func goflagsWithVCS(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOFLAGS").Output()
	if err != nil {
		t.Fatalf("go env GOFLAGS: %v", err)
	}
	flags := []string{"-buildvcs=auto"}
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(strings.TrimLeft(f, "-"), "buildvcs") {
			flags = append(flags, f)
		}
	}
	return strings.Join(flags, " ")
}

// TestVersionWithoutMakefile: `go build -o smtp_exporter .` in a git
// checkout, then `--version`, shows the checkout's revision and a version,
// and smtp_exporter_build_info carries them. The checkout is a fresh clone
// of this repository's HEAD (Go stamps VCS information only where .git is a
// directory, not in a linked worktree), built once as cloned and once with
// a modified file.
//
// The build's GOFLAGS are the machine's with Go's default -buildvcs=auto
// instead of a machine-wide -buildvcs=false (set with go env -w on some
// build machines, this one included; with it, Go embeds no VCS information
// and the revision is "unknown", as README says).
func TestVersionWithoutMakefile(t *testing.T) {
	_, err := exec.LookPath("git")
	testenv.Require(t, err == nil, "git is not installed")
	clone := filepath.Join(t.TempDir(), "checkout")
	gitOut(t, testenv.RepoRoot(), "rev-parse", "HEAD") // the tests run in a git checkout
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", testenv.RepoRoot(), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head := gitOut(t, clone, "rev-parse", "HEAD")
	short := head[:12]

	build := func(t *testing.T) string {
		t.Helper()
		cmd := exec.Command("go", "build", "-o", "smtp_exporter", ".")
		cmd.Dir = clone
		cmd.Env = append(os.Environ(), "GOFLAGS="+goflagsWithVCS(t))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return filepath.Join(clone, "smtp_exporter")
	}
	versionRe := regexp.MustCompile(`(?m)^smtp_exporter, version (\S+) \(branch: [^,]*, revision: (\S+)\)$`)
	dateRe := regexp.MustCompile(`(?m)^\s+build date:\s+(\d{8}-\d\d:\d\d:\d\d)$`)

	tests := []struct {
		name         string
		modify       bool
		wantRevision string
		wantVersion  string // substring
	}{
		{"clean checkout", false, head, short},
		{"modified checkout", true, head + "-modified", short},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.modify {
				f := filepath.Join(clone, "README.md")
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, append(b, "\nlocal change\n"...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			bin := build(t)
			out, err := exec.Command(bin, "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("--version: %v\n%s", err, out)
			}
			m := versionRe.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("--version output not understood:\n%s", out)
			}
			if m[2] != tc.wantRevision {
				t.Errorf("revision %q, want %q (git rev-parse HEAD)\n%s", m[2], tc.wantRevision, out)
			}
			if !strings.Contains(m[1], tc.wantVersion) {
				t.Errorf("version %q does not name the commit %s", m[1], tc.wantVersion)
			}
			if !dateRe.Match(out) {
				t.Errorf("no build date:\n%s", out)
			}

			conf := filepath.Join(t.TempDir(), "c.yml")
			write(t, conf, "modules:\n  default:\n    helo_name: probe.test\n")
			e := testenv.StartExporter(t, bin, "--config.file="+conf)
			_, metrics := e.Get(t, "/metrics")
			info := regexp.MustCompile(`(?m)^smtp_exporter_build_info\{.*\} 1$`).FindString(metrics)
			if !strings.Contains(info, `revision="`+tc.wantRevision+`"`) || !strings.Contains(info, `version="`+m[1]+`"`) {
				t.Errorf("build info %q, want revision %q and version %q", info, tc.wantRevision, m[1])
			}
			_, page := e.Get(t, "/")
			if !strings.Contains(page, tc.wantRevision) {
				t.Errorf("the landing page does not show the revision %s", tc.wantRevision)
			}
		})
	}
}
