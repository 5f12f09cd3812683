package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// maxImageSize is the most the container image may weigh (issue 21).
const maxImageSize = 30 << 20

// podman runs podman with vfs storage (the driver that works on these
// machines, with no overlay mounts) and returns its combined output.
type podman string

func (p podman) engine() string { return string(p) + " --storage-driver vfs" }

func (p podman) run(args ...string) (string, error) {
	out, err := exec.Command(string(p), append([]string{"--storage-driver", "vfs"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (p podman) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requirePodman checks what building and running the image needs: podman,
// runc (crun refuses the hybrid cgroup layout of these machines), root and
// make.
func requirePodman(t *testing.T) podman {
	t.Helper()
	bin, err := exec.LookPath("podman")
	testenv.Require(t, err == nil, "podman is not installed")
	_, err = exec.LookPath("runc")
	testenv.Require(t, err == nil, "runc is not installed")
	_, err = exec.LookPath("make")
	testenv.Require(t, err == nil, "make is not installed")
	testenv.Require(t, os.Geteuid() == 0, "podman with --network host and runc needs root here")
	return podman(bin)
}

// startSMTPSink runs Postfix's smtp-sink on a free loopback port until the
// test ends and returns its address.
func startSMTPSink(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		bin = "/usr/sbin/smtp-sink"
	}
	_, err = os.Stat(bin)
	testenv.Require(t, err == nil, "smtp-sink (postfix) is not installed")
	addr := testenv.FreeAddr(t)
	// smtp-sink refuses to run as root: -u drops to nobody.
	cmd := exec.Command(bin, "-u", "nobody", addr, "16")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("smtp-sink output:\n%s", out.String())
		}
	})
	waitListening(t, addr)
	return addr
}

// randomSuffix names this run's image and container.
func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestContainerImage (issue 21): `make image` builds the image of the
// Dockerfile, which runs as the Kubernetes manifests run it (read-only root
// filesystem, no capabilities, no privilege escalation): /-/healthy answers
// 200, a probe of a loopback smtp-sink through /probe succeeds, the process
// runs as nobody (uid and gid 65534), the version and revision make stamped
// are in smtp_exporter_build_info and in the OCI labels, the CA bundle is
// the build machine's, and the image is under 30 MB. The container and the
// image are removed at the end.
func TestContainerImage(t *testing.T) {
	p := requirePodman(t)
	sink := startSMTPSink(t)
	suffix := randomSuffix(t)
	image, name := "localhost/smtp_exporter:test-"+suffix, "smtp_exporter-test-"+suffix
	version := "0.0.0-test." + suffix

	// One build per run, through the Makefile as a user runs it.
	start := time.Now()
	cmd := exec.Command("make", "image", "IMAGE="+image, "VERSION="+version, "CONTAINER_ENGINE="+p.engine(),
		"IMAGE_CONTEXT="+filepath.Join(t.TempDir(), "image"))
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		if out, err := p.run("rmi", "-f", image); err != nil && !strings.Contains(out, "image not known") {
			t.Errorf("removing the image: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Logf("make image took %s", time.Since(start).Round(100*time.Millisecond))

	var inspect []struct {
		Size   int64
		Config struct {
			User         string
			Labels       map[string]string
			ExposedPorts map[string]any
			Entrypoint   []string
		}
	}
	if err := json.Unmarshal([]byte(p.must(t, "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("podman image inspect: %v (%d images)", err, len(inspect))
	}
	img := inspect[0]
	t.Logf("image size %.1f MB", float64(img.Size)/1e6)
	if img.Size <= 0 || img.Size > maxImageSize {
		t.Errorf("image size %d bytes, want at most %d", img.Size, maxImageSize)
	}
	revision := gitOut(t, testenv.RepoRoot(), "rev-parse", "HEAD")
	for label, want := range map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.source":   "https://github.com/smtp-exporter/smtp_exporter",
	} {
		if got := img.Config.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if img.Config.User != "65534:65534" {
		t.Errorf("USER %q, want 65534:65534", img.Config.User)
	}
	if _, ok := img.Config.ExposedPorts["9425/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 9425/tcp", img.Config.ExposedPorts)
	}
	if got := strings.Join(img.Config.Entrypoint, " "); got != "/bin/smtp_exporter --config.file=/etc/smtp_exporter/config.yml" {
		t.Errorf("entrypoint %q", got)
	}

	// Run it on the host's network, on a free loopback port.
	addr := testenv.FreeAddr(t)
	p.must(t, "--runtime", "runc", "run", "-d", "--name", name,
		"--read-only", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "--network", "host",
		image, "--web.listen-address="+addr)
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := p.run("logs", name)
			t.Logf("container log:\n%s", logs)
		}
		if _, err := p.run("rm", "-f", name); err != nil {
			t.Errorf("removing the container: %v", err)
		}
	})
	e := &testenv.Exporter{Base: "http://" + addr, Addr: addr}
	waitHealthy(t, p, name, e.Base)

	code, body := e.Get(t, "/probe?module=default&target="+sink)
	if v, ok := metricValue(body, "probe_success"); code != http.StatusOK || !ok || v != 1 {
		t.Errorf("/probe of smtp-sink %s through the container: %d, probe_success %v (found %t)\n%s", sink, code, v, ok, body)
	}
	if code, body := e.Get(t, "/metrics"); code != http.StatusOK || !strings.Contains(body, fmt.Sprintf("version=%q", version)) ||
		!strings.Contains(body, fmt.Sprintf("revision=%q", revision)) {
		t.Errorf("/metrics (%d) has no smtp_exporter_build_info of version %s, revision %s:\n%s", code, version, revision, grep(body, "build_info"))
	}

	// The process as the kernel sees it: nobody, no capabilities, no new
	// privileges.
	pid := strings.TrimSpace(p.must(t, "inspect", "--format", "{{.State.Pid}}", name))
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("the container's process %s: %v", pid, err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534\n", "Gid:\t65534\t65534\t65534\t65534\n",
		"CapEff:\t0000000000000000\n", "NoNewPrivs:\t1\n"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the container's process has no %q in its status:\n%s", strings.TrimSpace(want), status)
		}
	}

	// The CA bundle that STARTTLS and MTA-STS verify against is the build
	// machine's.
	bundle := filepath.Join(t.TempDir(), "ca.crt")
	p.must(t, "cp", name+":/etc/ssl/certs/ca-certificates.crt", bundle)
	got, err1 := os.ReadFile(bundle)
	want, err2 := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err1 != nil || err2 != nil || len(got) == 0 || !bytes.Equal(got, want) {
		t.Errorf("the image's CA bundle (%d bytes, %v) is not the build machine's (%d bytes, %v)", len(got), err1, len(want), err2)
	}
}

// waitHealthy waits until base/-/healthy answers 200, failing at once if the
// container stopped.
func waitHealthy(t *testing.T, p podman, name, base string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/-/healthy")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if running, _ := p.run("inspect", "--format", "{{.State.Running}}", name); strings.TrimSpace(running) != "true" {
			t.Fatalf("the container stopped (running: %s)", strings.TrimSpace(running))
		}
		if time.Now().After(deadline) {
			t.Fatalf("/-/healthy did not answer 200 within 30s (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
