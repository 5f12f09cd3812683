package server

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// sinkAddr serves the replies of Postfix's smtp-sink (the load run's server)
// on 127.0.0.1:0, allocating next to nothing itself, so that a benchmark's
// allocations are the exporter's.
func sinkAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	greeting := []byte("220 smtp-sink ESMTP\r\n")
	ehlo := []byte("250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n" +
		"250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n")
	ok, bye := []byte("250 2.0.0 Ok\r\n"), []byte("221 Bye\r\n")
	smtptest.Serve(b, ln, func(c net.Conn) {
		var buf [512]byte
		n := 0
		if _, err := c.Write(greeting); err != nil {
			return
		}
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				return
			}
			n += m
			for {
				i := bytes.IndexByte(buf[:n], '\n')
				if i < 0 {
					break
				}
				reply := ok
				switch cmd := bytes.ToUpper(buf[:min(4, i)]); string(cmd) {
				case "EHLO":
					reply = ehlo
				case "QUIT":
					_, _ = c.Write(bye)
					return
				}
				if _, err := c.Write(reply); err != nil {
					return
				}
				n = copy(buf[:], buf[i+1:n])
			}
			if n == len(buf) {
				return
			}
		}
	})
	return ln.Addr().String()
}

// BenchmarkProbeHandler measures one /probe of the load run's dialog
// (EHLO..QUIT against smtp-sink's replies), HTTP handler to answer,
// connection set-up included, with the recent probes' history at the
// binary's default and off. Its allocs/op and B/op are what the garbage
// collector pays for per probe under load.
func BenchmarkProbeHandler(b *testing.B) {
	addr := sinkAddr(b)
	for _, bc := range []struct {
		name    string
		history int
	}{{"history=100", 100}, {"history=0", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := newTestServer(b, testModules, Options{HistoryLimit: bc.history, HistoryBytes: 8 << 20})
			h := s.Probe()
			req := httptest.NewRequest(http.MethodGet, probeURL(addr, "default"), nil)
			w := &countingWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.code, w.n = 0, 0
				h.ServeHTTP(w, req)
				if w.code != 0 || w.n < 500 {
					b.Fatalf("probe: status %d, %d bytes", w.code, w.n)
				}
			}
		})
	}
}
