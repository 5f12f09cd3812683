// Package policytest serves MTA-STS policies over HTTPS on loopback for
// tests.
package policytest

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// Server is an HTTPS server on 127.0.0.1:0 with a certificate for
// mta-sts.example.test; handler answers every request. It counts the
// connections it accepted.
type Server struct {
	Port  uint16
	PKI   *testpki.PKI
	Conns atomic.Int32 // connections accepted
}

// Start serves handler until the test ends, with a certificate for
// mta-sts.example.test.
func Start(t testing.TB, handler http.HandlerFunc) *Server {
	t.Helper()
	return StartWith(t, testpki.Valid(t, "mta-sts.example.test"), handler)
}

// StartWith is Start with the certificate of pki.
func StartWith(t testing.TB, pki *testpki.PKI, handler http.HandlerFunc) *Server {
	t.Helper()
	ps := &Server{PKI: pki}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = ps.PKI.Server.Clone()
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests refuse on purpose
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ps.Conns.Add(1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	ps.Port = uint16(p)
	return ps
}

// Handler serves policy at /.well-known/mta-sts.txt for
// mta-sts.example.test, as text/plain.
func Handler(policy string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.test" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, policy)
	}
}

// Silent takes the connection and never answers: it reads until the
// client hangs up (at its deadline), so no response, not even an empty 200,
// can reach the client.
func Silent(w http.ResponseWriter, _ *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = io.Copy(io.Discard, buf)
}
