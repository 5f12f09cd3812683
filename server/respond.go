package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// buffers hold answers while they are written: a /probe answer is made
// whole in memory before it is sent, and nothing keeps it afterwards.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer is the largest buffer put back: the answer of an
// mx_lookup probe of many hosts is not kept for the next one.
const maxPooledBuffer = 64 << 10

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	buffers.Put(b)
}

// writeBuffered answers with body, gzipped when the client accepts it (as
// Prometheus does), within writeTimeout: the answer is complete in memory
// before this is called, so the probe's capacity is already free, and a
// client that does not read cannot hold the connection past the deadline.
func writeBuffered(w http.ResponseWriter, r *http.Request, contentType string, body []byte, writeTimeout time.Duration) error {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Add("Vary", "Accept-Encoding")
	if writeTimeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if acceptsGzip(r) && len(body) > 256 {
		zb := getBuffer()
		defer putBuffer(zb)
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(zb)
		_, _ = gz.Write(body) // a bytes.Buffer does not fail
		_ = gz.Close()
		gz.Reset(io.Discard)
		gzipWriters.Put(gz)
		h.Set("Content-Encoding", "gzip")
		body = zb.Bytes()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, err := w.Write(body)
	return err
}

// acceptsGzip reads Accept-Encoding: gzip (or *) with a q-value above 0.
func acceptsGzip(r *http.Request) bool {
	ae := r.Header.Get("Accept-Encoding")
	if ae == "" {
		return false
	}
	for _, part := range strings.Split(ae, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		enc = strings.TrimSpace(enc)
		if !strings.EqualFold(enc, "gzip") && enc != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					f = 0
				}
				q = f
			}
		}
		return q > 0
	}
	return false
}

// writeStreamed answers with what write produces, gzipped when the client
// accepts it, within writeTimeout. For /metrics: its probes are over and
// their connections closed before it writes, and the exposition of many
// static targets is better streamed than held whole in memory.
func writeStreamed(w http.ResponseWriter, r *http.Request, contentType string, writeTimeout time.Duration, write func(io.Writer) error) error {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Add("Vary", "Accept-Encoding")
	if writeTimeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	if !acceptsGzip(r) {
		return write(w)
	}
	h.Set("Content-Encoding", "gzip")
	gz := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(gz)
	gz.Reset(w)
	if err := write(gz); err != nil {
		return err
	}
	return gz.Close()
}
