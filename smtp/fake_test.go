package smtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// probeFake probes s with opts under a timeout.
func probeFake(t testing.TB, s *smtptest.Fake, opts *Options, timeout time.Duration) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Probe(ctx, s.Host, s.Port, opts)
}

func baseOptions() *Options {
	return &Options{HeloName: "probe.test"}
}

// phases lists the phase names of a result, in order.
func phases(r *Result) string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, string(p.Phase))
	}
	return strings.Join(names, " ")
}
