package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// TestVaryOnEveryAnswer: caches must key on Accept-Encoding whether or not
// this answer was gzipped.
func TestVaryOnEveryAnswer(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	s, reg := newTestServer(t, testModules, Options{})
	for _, tc := range []struct{ path, encoding string }{
		{probeURL(srv.Addr, ""), ""}, {probeURL(srv.Addr, ""), "gzip"}, {probeURL(srv.Addr, ""), "gzip;q=0"},
		{"/metrics", ""}, {"/metrics", "gzip"},
	} {
		h := s.Probe()
		if tc.path == "/metrics" {
			h = s.Metrics(reg)
		}
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Accept-Encoding", tc.encoding)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		gz := rec.Header().Get("Content-Encoding") == "gzip"
		if rec.Header().Get("Vary") != "Accept-Encoding" || gz != (tc.encoding == "gzip") {
			t.Errorf("%s with Accept-Encoding %q: Vary %q, Content-Encoding %q", tc.path, tc.encoding, rec.Header().Get("Vary"), rec.Header().Get("Content-Encoding"))
		}
	}
}

// TestRegistryCannotRepeatAProbeFamily: a registered metric named like a
// probe family is left out of /metrics, so no family appears twice.
func TestRegistryCannotRepeatAProbeFamily(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	s, reg := newTestServer(t, testModules+"targets:\n  - target: "+srv.Addr+"\n", Options{})
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "probe_success", Help: "registered by mistake"})
	clash.Set(42)
	reg.MustRegister(clash)
	_, body := get(t, s.Metrics(reg), "/metrics", nil)
	if n := strings.Count(body, "# TYPE probe_success "); n != 1 || strings.Contains(body, "probe_success 42") {
		t.Errorf("probe_success written %d times:\n%s", n, body)
	}
	if !strings.Contains(body, `probe_success{module="default",target="`+srv.Addr+`"} 1`) {
		t.Errorf("the static target's probe_success is missing:\n%s", body)
	}
}

// blockingWriter is a ResponseWriter whose Write waits for the test: a
// client that does not read.
type blockingWriter struct {
	*httptest.ResponseRecorder
	writing chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	close(w.writing)
	<-w.release
	return w.ResponseRecorder.Write(b)
}

// TestSlotFreedBeforeTheAnswerIsWritten: a client that never reads holds no
// probe capacity: the answer is complete before it is written, and the
// connection slot is free by then.
func TestSlotFreedBeforeTheAnswerIsWritten(t *testing.T) {
	srv := smtptest.Start(t, smtptest.OK)
	s, _ := newTestServer(t, testModules, Options{MaxInFlight: 1})
	w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), writing: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Probe().ServeHTTP(w, httptest.NewRequest(http.MethodGet, probeURL(srv.Addr, ""), nil))
	}()
	<-w.writing
	if n := s.conns.InUse(); n != 0 {
		t.Errorf("%d connection slots held while the answer waits for its reader", n)
	}
	// Another probe runs meanwhile.
	if code, _ := get(t, s.Probe(), probeURL(srv.Addr, ""), nil); code != 200 {
		t.Errorf("a second probe while the first answer is unread: %d", code)
	}
	close(w.release)
	<-done
	if !strings.Contains(w.Body.String(), "probe_success 1\n") {
		t.Errorf("answer: %s", w.Body.String())
	}
}

// TestPooledAnswersOweNothingToEachOther: /probe answers are made in pooled
// buffers; answers of different probes, plain and gzipped, taken in turn
// from several goroutines, are each whole and each their own probe's.
func TestPooledAnswersOweNothingToEachOther(t *testing.T) {
	ok := smtptest.Start(t, smtptest.OK)
	busy := smtptest.Start(t, smtptest.Busy)
	s, _ := newTestServer(t, testModules, Options{HistoryLimit: 10, HistoryBytes: 1 << 20})
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				target, want := ok.Addr, "probe_success 1\n"
				if (g+i)%2 == 1 {
					target, want = busy.Addr, "probe_success 0\n"
				}
				req := httptest.NewRequest(http.MethodGet, probeURL(target, ""), nil)
				gzipped := i%3 == 0
				if gzipped {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				rec := httptest.NewRecorder()
				s.Probe().ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				if gzipped {
					zr, err := gzip.NewReader(rec.Body)
					if err != nil {
						errs <- fmt.Errorf("gzip: %w", err)
						return
					}
					if body, err = io.ReadAll(zr); err != nil {
						errs <- fmt.Errorf("gunzip: %w", err)
						return
					}
				}
				parser := expfmt.NewTextParser(model.LegacyValidation)
				families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
				switch {
				case err != nil:
					errs <- fmt.Errorf("answer %d of goroutine %d does not parse: %w\n%s", i, g, err, body)
				case !strings.Contains(string(body), want) || bytes.Count(body, []byte("# TYPE probe_success ")) != 1:
					errs <- fmt.Errorf("answer %d of goroutine %d (target %s) is not its probe's alone:\n%s", i, g, target, body)
				case len(families["probe_success"].GetMetric()) != 1:
					errs <- fmt.Errorf("answer %d of goroutine %d has %d probe_success samples", i, g, len(families["probe_success"].GetMetric()))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
