package probe

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/dane"
	"github.com/smtp-exporter/smtp_exporter/mtasts"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// pathOptions are a dialog's options with the paths of a plan, for the
// tests of probeMX and probeHost.
type pathOptions struct {
	smtp.Options
	AllAddresses bool
	DANE         bool
	MTASTS       *mtasts.Options
	TLSRPT       bool
}

func baseOptions() *pathOptions {
	return &pathOptions{Options: smtp.Options{HeloName: "probe.test"}}
}

// testWalk is the walk of a probe with opts, as Run sets it up.
func testWalk(ctx context.Context, opts *pathOptions) (*walk, context.CancelFunc) {
	ctx, cancel := smtp.WithDefaultDeadline(ctx)
	plan := &Plan{Options: &opts.Options, AllAddresses: opts.AllAddresses, DANE: opts.DANE, MTASTS: opts.MTASTS, TLSRPT: opts.TLSRPT}
	return &walk{ctx: ctx, plan: plan, opts: &opts.Options, tr: smtp.NewTranscript(opts.Transcript, time.Now())}, cancel
}

// probeMXWith probes domain's exchangers with opts.
func probeMXWith(ctx context.Context, domain string, port uint16, opts *pathOptions, maxHosts int) (*MXResult, error) {
	w, cancel := testWalk(ctx, opts)
	defer cancel()
	return w.probeMX(domain, port, maxHosts)
}

// probeHostWith probes host with opts: one smtp.Result per address probed.
func probeHostWith(ctx context.Context, host string, port uint16, opts *pathOptions) ([]*smtp.Result, []*DANEResult, error) {
	w, cancel := testWalk(ctx, opts)
	defer cancel()
	dialogs, err := w.probeHost(host, port)
	results := make([]*smtp.Result, len(dialogs))
	danes := make([]*DANEResult, len(dialogs))
	for i, d := range dialogs {
		results[i], danes[i] = d.res, d.dane
	}
	if err != nil {
		return results, danes, err
	}
	return results, danes, nil
}

// recorder collects a probe's transcript.
type recorder struct {
	mu    sync.Mutex
	lines []smtp.TranscriptLine
}

func (r *recorder) add(l smtp.TranscriptLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, l := range r.lines {
		b.WriteString(l.String() + "\n")
	}
	return b.String()
}

// hosts returns the distinct smtp.TranscriptLine.Host values seen, sorted.
func (r *recorder) hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if !slices.Contains(out, l.Host) {
			out = append(out, l.Host)
		}
	}
	slices.Sort(out)
	return out
}

// phases lists the phase names of a result, in order.
func phases(r *smtp.Result) string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, string(p.Phase))
	}
	return strings.Join(names, " ")
}

// mustTLSA is the SPKI SHA-256 record of cert with usage.
func mustTLSA(t *testing.T, cert *x509.Certificate, usage uint8) dane.TLSARecord {
	t.Helper()
	r, err := dane.TLSAFor(cert, usage, dane.TLSASelectorSPKI, dane.TLSAMatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// probeOne probes host:port with opts as Run does for a single host: one
// address, DANE judging where it applies.
func probeOne(ctx context.Context, host string, port uint16, opts *pathOptions) (*smtp.Result, *DANEResult, error) {
	results, danes, err := probeHostWith(ctx, host, port, opts)
	if err != nil {
		return results[0], danes[0], err
	}
	if e := results[0].Err; e != nil {
		return results[0], danes[0], e
	}
	return results[0], danes[0], nil
}
