// Package dnstest runs a loopback DNS server with a fixed zone for tests.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Zone maps "name. TYPE" (e.g. "example.test. MX") to the answers, written
// as the value part of a record: "10 mx1.example.test." for MX, "127.0.0.1"
// for A, "::1" for AAAA. A name listed in NXDomain answers NXDOMAIN; any
// other question gets an empty answer (NODATA).
type Zone struct {
	Records  map[string][]string
	NXDomain []string
}

// Server is a DNS server on 127.0.0.1 (UDP and TCP, same port).
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
}

// Listen opens UDP and TCP on one free port of 127.0.0.1, as a DNS server
// needs. The port UDP got may be taken for TCP (by an ephemeral port of
// some connection), so it tries a few.
func Listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for try := 0; try < 50; try++ {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return nil, nil
}

// Start serves zone until the test ends.
func Start(t testing.TB, zone Zone) *Server {
	t.Helper()
	pc, ln := Listen(t)
	s := &Server{Addr: pc.LocalAddr().String()}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		for _, q := range req.Question {
			key := strings.ToLower(q.Name) + " " + dns.TypeToString[q.Qtype]
			for _, nx := range zone.NXDomain {
				if strings.EqualFold(nx, q.Name) {
					m.Rcode = dns.RcodeNameError
				}
			}
			for _, v := range zone.Records[key] {
				rr, err := dns.NewRR(q.Name + " 60 IN " + dns.TypeToString[q.Qtype] + " " + v)
				if err == nil {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		_ = w.WriteMsg(m)
	})
	serve(t, pc, ln, handler, handler)
	return s
}

// serve answers with udpHandler on pc and tcpHandler on ln until the test
// ends. The cleanup closes the sockets besides shutting the servers down:
// Shutdown of a server whose goroutine has not started serving yet (a test
// that ends at once) does nothing, and the server would then serve the
// socket for ever while the cleanup waits for it. On a closed socket it
// returns at once.
func serve(t testing.TB, pc net.PacketConn, ln net.Listener, udpHandler, tcpHandler dns.Handler) {
	udp := &dns.Server{PacketConn: pc, Handler: udpHandler}
	tcp := &dns.Server{Listener: ln, Handler: tcpHandler}
	var wg sync.WaitGroup
	for _, srv := range []*dns.Server{udp, tcp} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ActivateAndServe()
		}()
	}
	t.Cleanup(func() {
		_ = udp.Shutdown()
		_ = tcp.Shutdown()
		_ = pc.Close()
		_ = ln.Close()
		wg.Wait()
	})
}
