package collector

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/probe"
)

// TestFamiliesTable: every entry is one well-formed family, in name order
// (the order a registry writes), none twice.
func TestFamiliesTable(t *testing.T) {
	names := make([]string, len(families))
	for i, f := range families {
		names[i] = f.name
		if !model.LegacyValidation.IsValidMetricName(f.name) || f.help == "" {
			t.Errorf("%q: bad name or empty help", f.name)
		}
		if (f.perProbe == nil) == (f.perHost == nil) {
			t.Errorf("%s: exactly one of perProbe and perHost must be set", f.name)
		}
		for _, l := range f.labels {
			if l == "module" || l == "target" || l == "mx" || l == "preference" {
				t.Errorf("%s: label %q is added by the writer", f.name, l)
			}
		}
		if !IsProbeFamily(f.name) {
			t.Errorf("IsProbeFamily(%q) = false", f.name)
		}
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("families not sorted or not unique: %v", names)
	}
}

// TestExtensionsBounded: a server that advertises 121 keywords (or rotates
// made-up ones) makes no more extension series than the registry has; the
// rest is one count.
func TestExtensionsBounded(t *testing.T) {
	var ehlo strings.Builder
	ehlo.WriteString("250-mx.example.org\n250-STARTTLS\n250-SIZE 1000\n250-8BITMIME\n")
	for i := range 117 {
		fmt.Fprintf(&ehlo, "250-X-ROTATING-%d\n", i)
	}
	ehlo.WriteString("250 X-ROTATING-LAST")
	addr := scripted{banner: "220 mx.example.org ESMTP", replies: map[string]string{"EHLO": ehlo.String()}}.start(t, "127.0.0.1:0")
	set := buildSet(t, "modules:\n  default: {helo_name: probe.test}\n")
	tgt, err := set.Plans["default"].ParseTarget(addr)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := probe.Run(context.Background(), tgt, probe.Hooks{})
	var b bytes.Buffer
	if err := WriteProbeMetrics(&b, []Item{NewItem(o, nil, false)}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "probe_smtp_extension_info{"); n != 3 {
		t.Errorf("%d extension_info series, want 3 (STARTTLS, SIZE, 8BITMIME):\n%s", n, out)
	}
	// The engine keeps a bounded number of keywords (smtp's memory budget);
	// every one kept beyond the three registered ones is counted.
	want := fmt.Sprintf("\nprobe_smtp_extensions_unregistered %d\n", len(o.Hosts[0].Result.Extensions)-3)
	if !strings.Contains(out, want) || strings.Contains(out, "X-ROTATING") {
		t.Errorf("the unregistered keywords are not one count:\n%s", out)
	}
}
