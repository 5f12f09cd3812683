package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsRunOneWay checks the rooms of the design: main -> server ->
// collector -> probe -> (config, smtp, dane, mtasts, tlsrpt, dnssec,
// delivery) -> the standard library, miekg/dns and internal helpers. The
// protocol packages know nothing of each other (dane, mtasts and tlsrpt
// share the dnssec lookups), of probe, collector, server or config.
func TestImportsRunOneWay(t *testing.T) {
	const mod = "github.com/smtp-exporter/smtp_exporter/"
	allowed := map[string][]string{
		"smtp":     {"internal/textsafe"},
		"dnssec":   {},
		"dane":     {"dnssec"},
		"mtasts":   {"dnssec", "internal/textsafe"},
		"tlsrpt":   {"dnssec"},
		"delivery": {"internal/textsafe"},
		"config":   {"smtp", "internal/textsafe"},
	}
	for pkg, ok := range allowed {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			name, ours := strings.CutPrefix(dep, mod)
			if !ours || name == pkg {
				continue
			}
			allowedDep := false
			for _, a := range ok {
				allowedDep = allowedDep || name == a
			}
			if !allowedDep {
				t.Errorf("%s imports %s", pkg, name)
			}
		}
	}
}
