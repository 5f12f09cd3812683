// Package integration proves the exporter against real servers: a private
// Postfix started by the tests, and a real Prometheus scraping the exporter.
// Under CI=true a missing Postfix or Prometheus fails the tests.
package integration

import (
	"encoding/base64"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithExporter(m, &binary))
}

// runProbeCLI runs `smtp_exporter probe` and returns its exit code and output.
func runProbeCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, append([]string{"probe"}, args...)...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// metricValue finds the value of one series in an exposition.
func metricValue(body, series string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
