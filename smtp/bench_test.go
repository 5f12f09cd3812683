package smtp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/internal/smtptest"
)

// sinkServer is a minimal, fast SMTP responder for benchmarks: it answers
// every command with a canned reply, like Postfix's smtp-sink.
func sinkServer(b *testing.B) (string, uint16) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	smtptest.Serve(b, ln, func(c net.Conn) {
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
	})
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
		// What the recent probes' history costs: every line recorded.
		{"ehlo-quit-transcript", &Options{HeloName: "probe.test", Transcript: func(TranscriptLine) {}}},
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

// maximalServer answers every command with the largest reply the probe
// reads: MaxReplyLines lines of MaxLineLength bytes (smtptest.Maximal). The
// EHLO reply's lines are each a distinct keyword with long parameters.
func maximalServer(t testing.TB) (string, uint16) {
	addr := smtptest.Start(t, smtptest.Maximal).Addr
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return "127.0.0.1", uint16(n)
}

// retainedPerProbe runs n probes against the maximal server and returns the
// heap bytes still held per probe by what the caller keeps: the Result and,
// with transcript, every transcript line.
func retainedPerProbe(t testing.TB, n int, transcript bool) float64 {
	host, port := maximalServer(t)
	results := make([]*Result, n)
	lines := make([][]TranscriptLine, n)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for i := range n {
		opts := &Options{HeloName: "probe.test"}
		if transcript {
			opts.Transcript = func(l TranscriptLine) { lines[i] = append(lines[i], l) }
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := Probe(ctx, host, port, opts)
		cancel()
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		results[i] = res
	}
	after := heap()
	runtime.KeepAlive(results)
	runtime.KeepAlive(lines)
	return float64(after-before) / float64(n)
}

// TestMemoryBudgetPerProbe: against a server sending 128 lines of 4 KiB in
// every reply (half a megabyte each), what one probe keeps stays small: the
// Result a few KiB (12.6 KiB measured), the transcript at most 32 KiB of
// text (41 KiB with the Result measured). Before the caps, one probe kept
// about 1.3 MB.
func TestMemoryBudgetPerProbe(t *testing.T) {
	res := retainedPerProbe(t, 20, false)
	withTranscript := retainedPerProbe(t, 20, true)
	t.Logf("retained per probe against maximal replies: %.0f bytes (Result), %.0f bytes (Result and transcript)", res, withTranscript)
	if res > 32<<10 {
		t.Errorf("a Result keeps %.0f bytes, want under 32 KiB", res)
	}
	if limit := float64(maxTranscriptBytes + 48<<10); withTranscript > limit {
		t.Errorf("a Result and its transcript keep %.0f bytes, want under %.0f", withTranscript, limit)
	}
}

// BenchmarkRetainedMaximalReplies reports the bytes one probe keeps against
// a server sending maximal replies (see TestMemoryBudgetPerProbe).
func BenchmarkRetainedMaximalReplies(b *testing.B) {
	for _, transcript := range []bool{false, true} {
		b.Run(fmt.Sprintf("transcript=%t", transcript), func(b *testing.B) {
			var per float64
			for b.Loop() {
				per = retainedPerProbe(b, 10, transcript)
			}
			b.ReportMetric(per, "retained-B/probe")
		})
	}
}

// TestMaximalRepliesCapped: what is kept of maximal replies is capped (16
// lines, 1 KiB of text per reply, 64 EHLO keywords, 32 KiB of transcript
// with one note saying it was truncated), while the dialog goes on.
func TestMaximalRepliesCapped(t *testing.T) {
	host, port := maximalServer(t)
	var lines []TranscriptLine
	opts := &Options{HeloName: "probe.test", Transcript: func(l TranscriptLine) { lines = append(lines, l) }}
	res, err := Probe(t.Context(), host, port, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range res.Phases {
		if ph.Reply == nil {
			continue
		}
		text := 0
		for _, l := range ph.Reply.Lines {
			text += len(l)
		}
		if n := len(ph.Reply.Lines); n > maxKeptLines+1 || text > maxKeptBytes+64 {
			t.Errorf("%s: kept %d lines, %d bytes", ph.Phase, n, text)
		}
		if last := ph.Reply.Lines[len(ph.Reply.Lines)-1]; !strings.HasSuffix(last, "more lines not kept]") {
			t.Errorf("%s: the reply does not say lines were dropped: %q", ph.Phase, last)
		}
	}
	if n := len(res.Extensions); n != maxExtensions {
		t.Errorf("kept %d EHLO keywords, want %d", n, maxExtensions)
	}
	truncated, server, total := 0, 0, 0
	for _, l := range lines {
		total += len(l.Text)
		if l.Dir == Server {
			server++
		}
		if l.Dir == Note && strings.HasPrefix(l.Text, "transcript truncated") {
			truncated++
		}
	}
	if truncated != 1 || total > maxTranscriptBytes+4<<10 || server == 0 {
		t.Errorf("transcript: %d truncation notes, %d bytes, %d server lines", truncated, total, server)
	}
	if last := lines[len(lines)-1]; last.Dir != Client || last.Text != "QUIT" {
		t.Errorf("the probe's own lines stopped after the cap: last line %s", last)
	}
}
