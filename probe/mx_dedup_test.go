package probe

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/dnstest"
	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// TestProbeMXDeduplicatesExchangers: an MX set that names one host twice,
// in another case, with a trailing dot or not, or at several preferences,
// probes it once, at its lowest preference (RFC 5321 5.1: a sender tries
// each host once), and counts it once in Found.
func TestProbeMXDeduplicatesExchangers(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	_, portStr, _ := net.SplitHostPort(srv.Addr)
	port := mustPort(t, portStr)
	opts := baseOptions()
	opts.Resolver = dnstest.Start(t, dnstest.Zone{Records: map[string][]string{
		"dup.test. MX":      {"20 mx.dup.test.", "10 MX.dup.test.", "30 Mx.Dup.Test.", "40 other.dup.test."},
		"mx.dup.test. A":    {"127.0.0.1"},
		"other.dup.test. A": {"127.0.0.1"},
		"twice.test. MX":    {"10 mx.dup.test.", "10 MX.DUP.TEST."},
		"limited.test. MX":  {"10 mx.dup.test.", "20 mx.dup.test.", "30 other.dup.test."},
	}}).Addr
	var lines []string // probeMX serialises the calls
	opts.Transcript = func(l smtp.TranscriptLine) { lines = append(lines, l.String()) }
	for _, tc := range []struct {
		domain   string
		maxHosts int
		want     string // name@preference of each host probed
		found    int
	}{
		{"dup.test", 5, "mx.dup.test@10 other.dup.test@40", 2},
		{"twice.test", 5, "mx.dup.test@10", 1},
		// The duplicate does not take a place under mx_max_hosts.
		{"limited.test", 2, "mx.dup.test@10 other.dup.test@30", 2},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			lines = nil
			accepted := srv.Accepted.Load()
			res, err := probeMXWith(t.Context(), tc.domain, port, opts, tc.maxHosts)
			if err != nil || res.Err != nil {
				t.Fatalf("err %v / %v", err, res.Err)
			}
			var got []string
			for _, h := range res.Hosts {
				got = append(got, h.Name+"@"+strconv.Itoa(int(h.Preference)))
				if !h.Result.Success() {
					t.Errorf("%s failed: %v", h.Name, h.Result.Err)
				}
			}
			if strings.Join(got, " ") != tc.want || res.Found != tc.found {
				t.Errorf("probed %q (found %d), want %q (found %d)", strings.Join(got, " "), res.Found, tc.want, tc.found)
			}
			if n := srv.Accepted.Load() - accepted; n != int64(len(res.Hosts)) {
				t.Errorf("the server accepted %d connections for %d hosts", n, len(res.Hosts))
			}
			if all := strings.Join(lines, "\n"); !strings.Contains(all, "named more than once") {
				t.Errorf("the transcript does not say a duplicate was dropped:\n%s", all)
			}
		})
	}
}
