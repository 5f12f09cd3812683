package server

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// TestHistoryEntryHoldsValuesOnly: an entry of the recent probes is made of
// values and strings (and its transcript's bytes): no pointer, function,
// interface or map through which it could keep a probe's results, and the
// server's certificate chain with them, alive (issue 19.1).
func TestHistoryEntryHoldsValuesOnly(t *testing.T) {
	var check func(path string, ty reflect.Type)
	check = func(path string, ty reflect.Type) {
		switch {
		case ty == reflect.TypeOf(time.Time{}):
			// A wall clock, a monotonic reading and a *time.Location, which
			// is shared (time.Local, time.UTC), never a probe's.
		case ty == reflect.TypeOf([]byte(nil)):
		case ty.Kind() == reflect.Struct:
			for i := range ty.NumField() {
				check(path+"."+ty.Field(i).Name, ty.Field(i).Type)
			}
		case ty.Kind() == reflect.String, ty.Kind() == reflect.Bool,
			ty.Kind() >= reflect.Int && ty.Kind() <= reflect.Uint64:
		default:
			t.Errorf("%s is a %s: an entry keeps only values, strings and its transcript's bytes", path, ty)
		}
	}
	check("HistoryEntry", reflect.TypeOf(HistoryEntry{}))
}

// hugeCertificateServer serves STARTTLS with certificates of about 190 KB
// (5,000 DNS names), as the server of issue 19.1 did: a different one on
// each of the first n connections, since crypto/tls shares the parsed
// certificate among connections that are shown the same one.
func hugeCertificateServer(t testing.TB, n int) *smtptest.Server {
	names := make([]string, 5000)
	for i := range names {
		names[i] = fmt.Sprintf("host-%04d.a-rather-long-label.example.test", i)
	}
	certs := make([]*tls.Certificate, n)
	for i := range certs {
		pki := testpki.New(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), names...)
		if size := len(pki.Leaf.Raw); size < 180<<10 {
			t.Fatalf("the certificate has %d bytes, want a huge one", size)
		}
		certs[i] = &pki.Server.Certificates[0]
	}
	var next atomic.Int64
	return smtptest.StartSTARTTLS(t, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return certs[int(next.Add(1)-1)%n], nil
	}})
}

// TestHistoryRetainsWhatItCounts (issue 19.1): probes without debug=true of
// a STARTTLS server sending a 190 KB certificate keep, per entry of the
// recent probes, what History.Bytes counts for it, to within a few KiB:
// the summary and the transcript, not the parsed certificate chain. Each
// entry used to keep the probe's whole result: 100 such probes held
// 103 MiB of heap while the history counted 305 KiB.
func TestHistoryRetainsWhatItCounts(t *testing.T) {
	const probes = 40
	srv := hugeCertificateServer(t, probes+1)
	conf := "modules:\n  default:\n    helo_name: probe.test\n    tls: starttls\n    tls_config: {insecure_skip_verify: true}\n"
	s, _ := newTestServer(t, conf, Options{HistoryLimit: 100, HistoryBytes: 8 << 20})
	url := probeURL(srv.Addr, "default")
	probe := func() {
		w := &countingWriter{header: http.Header{}}
		s.Probe().ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
		if w.code != 0 || w.n == 0 {
			t.Fatalf("probe: status %d, %d bytes", w.code, w.n)
		}
	}
	heap := func() uint64 {
		// Two cycles empty the sync.Pools; crypto/tls forgets a parsed
		// certificate in a finalizer, freed by the cycle after it ran.
		for range 3 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	probe() // counters, pools and the handshake's first-use caches
	before, counted := heap(), s.history.Bytes()
	for range probes {
		probe()
	}
	retained := (float64(heap()) - float64(before)) / probes
	perEntry := float64(s.history.Bytes()-counted) / probes
	t.Logf("per entry: %.0f bytes of heap retained, %.0f bytes counted by the history", retained, perEntry)
	if e := s.history.List()[0]; !e.Success || e.TranscriptSize == 0 {
		t.Fatalf("the probes did not succeed with a transcript kept: %+v", e)
	}
	if retained > perEntry+2<<10 {
		t.Errorf("an entry retains %.0f bytes of heap, %.0f more than the history counts for it", retained, retained-perEntry)
	}
}
