package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// probeSpec is one probe to run: a module against a target.
type probeSpec struct {
	module     *Module
	moduleName string
	target     string // as given: the counter key and the target label
	host       string
	port       uint16
	checkAddr  func(host string, addr netip.Addr) error
	transcript func(smtp.TranscriptLine)
}

// newProbeSpec parses target as module m reads it: a domain with
// mx_lookup, else host[:port] with the module's port as default.
func newProbeSpec(m *Module, moduleName, target string) (probeSpec, error) {
	s := probeSpec{module: m, moduleName: moduleName, target: target}
	var err error
	if m.MXLookup {
		s.host, err = ParseDomain(target)
	} else {
		s.host, s.port, err = ParseTarget(target, m.Port)
	}
	return s, err
}

// run probes the target, a host or (mx_lookup) every exchanger of a domain.
func (s *probeSpec) run(ctx context.Context) *outcome {
	opts := s.module.options
	if s.checkAddr != nil || s.transcript != nil {
		o := *opts
		o.CheckAddr, o.Transcript = s.checkAddr, s.transcript
		opts = &o
	}
	if s.module.MXLookup {
		mx, _ := smtp.ProbeMX(ctx, s.host, s.module.Port, opts, s.module.MXMaxHosts)
		return newMXOutcome(mx, s.module.MXSuccess)
	}
	res, _ := smtp.Probe(ctx, s.host, s.port, opts)
	return newOutcome(res)
}

// count adds the outcome's replies to counters and keeps the totals.
func (o *outcome) count(c *ReplyCounters, module, target string) {
	for i := range o.hosts {
		h := &o.hosts[i]
		h.counts = c.Add(CounterKey{Module: module, Target: target, MX: h.name}, h.res)
	}
}

// policyError is the first refusal by the address policy, if any.
func (o *outcome) policyError() *smtp.Error {
	for _, h := range o.hosts {
		if e := h.res.Err; e != nil && e.Reason == smtp.ReasonPolicy {
			return e
		}
	}
	return nil
}

// failures lists each host's failure, for logs.
func (o *outcome) failures() []*smtp.Error {
	var errs []*smtp.Error
	if o.lookupErr != nil {
		errs = append(errs, o.lookupErr)
	}
	for _, h := range o.hosts {
		if h.res.Err != nil {
			errs = append(errs, h.res.Err)
		}
	}
	return errs
}

// scrapeTimeoutHeader is the header Prometheus sets to its scrape timeout.
const scrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// scrapeTimeout reads the scrape timeout header less offset; ok is false
// without the header. A header at or below the offset is used whole, since
// nothing would remain otherwise.
func scrapeTimeout(r *http.Request, offset float64) (d time.Duration, ok bool, err error) {
	v := r.Header.Get(scrapeTimeoutHeader)
	if v == "" {
		return 0, false, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 || secs > 86400 {
		return 0, false, fmt.Errorf("invalid %s header %q", scrapeTimeoutHeader, v)
	}
	if secs > offset {
		secs -= offset
	}
	return time.Duration(secs * float64(time.Second)), true, nil
}

// probeTimeout is the module's timeout, capped by the scrape timeout.
func probeTimeout(r *http.Request, module time.Duration, offset float64) (time.Duration, error) {
	d, ok, err := scrapeTimeout(r, offset)
	if err != nil {
		return 0, err
	}
	if ok && d < module {
		return d, nil
	}
	return module, nil
}
