package probe

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestNagiosPerfDataLabels: with several hosts, each phase's label names
// its host, is quoted where it holds a space (” for a quote, no '='), and
// no label is used twice. The status of an MX probe that failed on one
// host with a 4xx and on another to connect is the worse, CRITICAL, with
// that host's failure.
func TestNagiosPerfDataLabels(t *testing.T) {
	host := func(name string, err *smtp.Error, phases ...smtp.Phase) Host {
		h := Host{Name: name, Result: &smtp.Result{Err: err}}
		for i, p := range phases {
			h.Phases = append(h.Phases, PhaseSummary{Phase: p, Duration: time.Duration(i+1) * time.Millisecond})
		}
		return h
	}
	o := &Outcome{Target: Target{Key: "example.org"}, MXFound: 3, Duration: 1500 * time.Millisecond, Hosts: []Host{
		host("mx1.example.org", &smtp.Error{Phase: smtp.PhaseRcpt, Reason: smtp.Reason4xx}, smtp.PhaseConnect, smtp.PhaseBanner),
		host("it's=odd", &smtp.Error{Phase: smtp.PhaseConnect, Reason: smtp.ReasonConnect}, smtp.PhaseConnect),
		host("", nil, PhaseMTASTS),
		host("", nil, PhaseMTASTS),
	}}
	var b bytes.Buffer
	code := WriteNagios(&b, o, nil, CertLimits{}, time.Now())
	first, _, _ := strings.Cut(b.String(), "\n")
	want := "SMTP CRITICAL - [it's=odd] failed in phase connect (connect): the TCP connection could not be made (2 of 4 hosts failed) |" +
		" time=1.500000s;;;0 'mx1.example.org connect'=0.001000s;;;0 'mx1.example.org banner'=0.002000s;;;0" +
		" 'it''s_odd connect'=0.001000s;;;0 mta_sts=0.001000s;;;0 mta_sts_2=0.001000s;;;0"
	if first != want || code != PluginCritical {
		t.Errorf("exit %d, first line\n got: %s\nwant: %s", code, first, want)
	}
}
