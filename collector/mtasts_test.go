package collector

import (
	"bytes"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestMTASTSCompliantExposition: probe_smtp_mta_sts_compliant is one gauge
// per exchanger judged by a policy, with the exchanger's labels, and absent
// for a row without a verdict (no policy, or nothing dialled).
func TestMTASTSCompliantExposition(t *testing.T) {
	yes, no := true, false
	o := &probe.Outcome{Target: probe.Target{Plan: &probe.Plan{Name: "mx"}, Key: "example.test", Raw: "example.test"},
		Success: true, MXFound: 3,
		Hosts: []probe.Host{
			{Name: "mx1.example.test", Preference: "10", Result: &smtp.Result{}, MTASTSCompliant: &yes},
			{Name: "mx2.example.test", Preference: "20", Result: &smtp.Result{}, MTASTSCompliant: &no},
			{Name: "mx3.example.test", Preference: "30", Result: &smtp.Result{}},
		}}
	var b bytes.Buffer
	if err := WriteProbeMetrics(&b, []Item{NewItem(o, nil, true)}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE probe_smtp_mta_sts_compliant gauge\n",
		`probe_smtp_mta_sts_compliant{module="mx",mx="mx1.example.test",preference="10",target="example.test"} 1` + "\n",
		`probe_smtp_mta_sts_compliant{module="mx",mx="mx2.example.test",preference="20",target="example.test"} 0` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\nprobe_smtp_mta_sts_compliant{"); n != 2 {
		t.Errorf("%d compliant series, want 2 (none for the row without a verdict):\n%s", n, out)
	}
}
