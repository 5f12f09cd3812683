package probe

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

func TestMTASTSFailure(t *testing.T) {
	hook := errors.New("10.0.0.1 is denied")
	for _, tc := range []struct {
		name       string
		err        error
		wantReason smtp.Reason // empty: no failure
	}{
		{"no error", nil, ""},
		{"no policy", fmt.Errorf("%w (0 records)", mtasts.ErrNoPolicy), ""},
		{"deadline", fmt.Errorf("mta-sts policy fetch: %w", context.DeadlineExceeded), smtp.ReasonTimeout},
		{"refused", fmt.Errorf("%w: mta-sts.example.test (10.0.0.1): %w", mtasts.ErrRefused, hook), smtp.ReasonPolicy},
		{"broken policy", errors.New("mta-sts policy: no max_age"), ReasonMTASTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mtastsFailure(tc.err)
			if tc.wantReason == "" {
				if f != nil {
					t.Fatalf("failure %v, want none", f)
				}
				return
			}
			if f == nil || f.Phase != PhaseMTASTS || f.Reason != tc.wantReason || !errors.Is(f, tc.err) {
				t.Fatalf("failure %v, want phase mta_sts reason %s", f, tc.wantReason)
			}
		})
	}
	p := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: 1}
	if f := checkMXFailure(p, "other.example.test", true); f == nil || f.Phase != PhaseMTASTS || f.Reason != ReasonMTASTS {
		t.Errorf("enforce, unlisted mx: %v", f)
	}
	if f := checkMXFailure(p, "mx.example.test", true); f != nil {
		t.Errorf("enforce, listed mx: %v", f)
	}
	p.Mode = mtasts.ModeTesting
	if f := checkMXFailure(p, "other.example.test", false); f != nil {
		t.Errorf("testing mode failed the probe: %v", f)
	}
}
