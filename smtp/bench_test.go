package smtp

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// sinkServer is a minimal, fast SMTP responder for benchmarks: it answers
// every command with a canned reply, like Postfix's smtp-sink.
func sinkServer(b *testing.B) (string, uint16) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				c.Write([]byte("220 sink.test ESMTP\r\n"))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"):
						c.Write([]byte("250-sink.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"))
					case cmd == "QUIT":
						c.Write([]byte("221 2.0.0 bye\r\n"))
						return
					default:
						c.Write([]byte("250 2.0.0 ok\r\n"))
					}
				}
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", uint16(addr.Port)
}

// BenchmarkProbe measures one probe against an in-process server,
// connection set-up included: EHLO..QUIT, and with MAIL FROM and RCPT TO.
func BenchmarkProbe(b *testing.B) {
	host, port := sinkServer(b)
	for _, bc := range []struct {
		name string
		opts *Options
	}{
		{"ehlo-quit", &Options{HeloName: "probe.test"}},
		{"mail-rcpt", &Options{HeloName: "probe.test", MailFrom: "probe@example.org", RcptTo: []string{"postmaster@example.org"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if _, err := Probe(ctx, host, port, bc.opts); err != nil {
					b.Fatal(err)
				}
				cancel()
			}
		})
	}
}

// BenchmarkReadReply measures parsing a typical multi-line EHLO reply.
func BenchmarkReadReply(b *testing.B) {
	in := "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
	sr := strings.NewReader(in)
	r := NewReader(sr)
	b.ReportAllocs()
	for b.Loop() {
		sr.Reset(in)
		r.Reset(sr)
		if _, err := ReadReply(r, nil); err != nil {
			b.Fatal(err)
		}
	}
}
