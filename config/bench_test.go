package config

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse10kTargets: a reload of a file with 10,000 static targets
// (the walk beside the types, the decoding and the checks).
func BenchmarkParse10kTargets(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("modules:\n  default: {helo_name: probe.test}\ntargets:\n")
	for i := range 10000 {
		fmt.Fprintf(&sb, "  - target: mx%d.example.org:25\n", i)
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "."); err != nil {
			b.Fatal(err)
		}
	}
}
