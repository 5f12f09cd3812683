// Command loadfloor is the floor of scripts/load: the least a Go program does
// to answer /probe?target=host:port with the exporter's plain dialog (the
// 220 greeting, EHLO, QUIT) and one probe_success line. The load run measures
// its CPU per probe beside smtp_exporter's and blackbox_exporter's, so the
// exporter's cost above it (the metrics, counters, history, transcript) is
// in plain sight. It never does anything else: no TLS, no metrics but
// probe_success, no configuration; it is not shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"time"
)

func main() {
	addr := flag.String("web.listen-address", "127.0.0.1:9427", "Address to answer HTTP on.")
	helo := flag.String("helo", "probe.test", "Name sent with EHLO.")
	timeout := flag.Duration("timeout", 5*time.Second, "Deadline of one probe, dial to the reply to QUIT.")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Healthy\n") })
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.Query().Get("target")
		if target == "" {
			http.Error(w, "target parameter is missing", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), *timeout)
		defer cancel()
		success := 1
		if err := probe(ctx, target, *helo); err != nil {
			success = 0
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintf(w, "probe_success %d\n", success)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: *timeout + 10*time.Second}
	log.Fatal(srv.ListenAndServe())
}

// probe dials target and runs greeting, EHLO and QUIT, each reply (multi-line
// ones whole) of the class expected, within ctx's deadline.
func probe(ctx context.Context, target, helo string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	c := textproto.NewConn(conn)
	if _, _, err := c.ReadResponse(220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.PrintfLine("EHLO %s", helo); err != nil {
		return fmt.Errorf("sending EHLO: %w", err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if err := c.PrintfLine("QUIT"); err != nil {
		return fmt.Errorf("sending QUIT: %w", err)
	}
	if _, _, err := c.ReadResponse(221); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}
