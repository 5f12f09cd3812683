// Package dnslab runs a private DNS lab of real components for tests: NSD
// as the authoritative server of a few test zones, some of them signed with
// DNSSEC at test time (ldns-keygen, ldns-signzone), and unbound as a
// validating resolver that trusts the signed zones' keys. Everything lives
// in a temporary directory, listens on loopback and is stopped when the
// test ends.
package dnslab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/smtp-exporter/smtp_exporter/internal/testenv"
)

// Binaries are the programs the lab runs, all from Debian's nsd, unbound
// and ldnsutils packages (scripts/install-test-deps installs them).
var Binaries = []string{"nsd", "unbound", "ldns-keygen", "ldns-signzone"}

// Missing returns the lab's programs that are not installed.
func Missing() []string {
	var out []string
	for _, b := range Binaries {
		if _, err := lookPath(b); err != nil {
			out = append(out, b)
		}
	}
	return out
}

// Require fails (under CI=true) or skips the test when a program of the lab
// is missing.
func Require(t testing.TB) {
	t.Helper()
	m := Missing()
	testenv.Require(t, len(m) == 0, "the DNS lab needs %s (packages nsd, unbound, ldnsutils)", strings.Join(m, ", "))
}

// lookPath finds name in $PATH or in the sbin directories, which a root
// shell has but a test's environment may not.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", name)
}

// Zone is one zone the lab serves.
type Zone struct {
	// Name is the zone's name, e.g. "dane.test." (a trailing dot is added).
	Name string
	// Signed zones are signed with fresh keys (ECDSA P-256, NSEC), and
	// unbound trusts their KSK; unsigned ones are declared insecure.
	Signed bool
	// Records are zone-file lines, owners relative to the zone or absolute:
	// "mx A 127.0.0.1", "_25._tcp.mx TLSA 3 1 1 ab12...". The SOA, the NS
	// record and the name server's address are added.
	Records []string
	// Bogus are records appended to a signed zone after signing: without
	// signatures, they are bogus data, which a validating resolver refuses
	// (SERVFAIL).
	Bogus []string
}

// Config describes a lab.
type Config struct {
	Zones []Zone
	// ResolverIP is the address unbound listens on; default 127.0.0.1. Any
	// 127/8 address is loopback on Linux.
	ResolverIP netip.Addr
	// ResolverPort is unbound's port; 0 picks a free one. Port 53 (as
	// root) makes the resolver usable from /etc/resolv.conf, which cannot
	// name a port.
	ResolverPort uint16
}

// Lab is a running DNS lab.
type Lab struct {
	// Dir holds the zones, keys, configurations and logs.
	Dir string
	// Authoritative is NSD's "127.0.0.1:port".
	Authoritative string
	// Resolver is unbound's "ip:port": the validating resolver to ask.
	Resolver string
	// TrustAnchors are the DS records of the signed zones' KSKs.
	TrustAnchors []string

	procs []*proc
}

// Start builds the zones (signing the signed ones), starts NSD, waits
// until it serves every zone, then starts unbound and waits until it
// answers. The lab is stopped when the test ends.
func Start(t testing.TB, cfg Config) *Lab {
	t.Helper()
	Require(t)
	lab := &Lab{Dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dns lab logs:\n%s", lab.logs())
		}
		lab.stop()
	})
	for i := range cfg.Zones {
		cfg.Zones[i].Name = dns.Fqdn(strings.ToLower(cfg.Zones[i].Name))
		if err := lab.writeZone(cfg.Zones[i]); err != nil {
			t.Fatalf("dns lab: zone %s: %v", cfg.Zones[i].Name, err)
		}
	}
	if err := lab.startNSD(cfg.Zones); err != nil {
		t.Fatalf("dns lab: %v", err)
	}
	if err := lab.startUnbound(cfg); err != nil {
		t.Fatalf("dns lab: %v", err)
	}
	return lab
}

// zoneFile is the file name of a zone's (unsigned) data.
func zoneFile(name string) string { return strings.TrimSuffix(name, ".") + ".zone" }

// writeZone writes the zone file and, for a signed zone, makes its keys,
// signs it and keeps its DS as a trust anchor.
func (l *Lab) writeZone(z Zone) error {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 60\n", z.Name)
	fmt.Fprintf(&b, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n", z.Name, z.Name)
	fmt.Fprintf(&b, "@ IN NS ns.%s\nns IN A 127.0.0.1\n", z.Name)
	for _, r := range z.Records {
		if strings.ContainsAny(r, "\n\r") {
			return fmt.Errorf("record %q spans lines", r)
		}
		b.WriteString(r)
		b.WriteByte('\n')
	}
	path := filepath.Join(l.Dir, zoneFile(z.Name))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if !z.Signed {
		if len(z.Bogus) > 0 {
			return errors.New("bogus records need a signed zone")
		}
		return nil
	}
	ksk, err := l.run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", z.Name)
	if err != nil {
		return err
	}
	zsk, err := l.run("ldns-keygen", "-a", "ECDSAP256SHA256", z.Name)
	if err != nil {
		return err
	}
	// Signatures valid from an hour ago for a week: a clock that moved a
	// little does not make them bogus.
	now := time.Now().UTC()
	if _, err := l.run("ldns-signzone", "-i", now.Add(-time.Hour).Format("20060102150405"),
		"-e", now.Add(7*24*time.Hour).Format("20060102150405"), "-o", z.Name, "-f", path+".signed",
		path, strings.TrimSpace(ksk), strings.TrimSpace(zsk)); err != nil {
		return err
	}
	if len(z.Bogus) > 0 {
		f, err := os.OpenFile(path+".signed", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		for _, r := range z.Bogus {
			if strings.ContainsAny(r, "\n\r") {
				_ = f.Close()
				return fmt.Errorf("record %q spans lines", r)
			}
			// The signed file has absolute owner names: make them so.
			fmt.Fprintf(f, "$ORIGIN %s\n%s\n", z.Name, r)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	ds, err := os.ReadFile(filepath.Join(l.Dir, strings.TrimSpace(ksk)+".ds"))
	if err != nil {
		return fmt.Errorf("the KSK's DS: %w", err)
	}
	l.TrustAnchors = append(l.TrustAnchors, strings.TrimSpace(string(ds)))
	return nil
}

// run runs a program in the lab's directory and returns its standard output.
func (l *Lab) run(name string, args ...string) (string, error) {
	path, err := lookPath(name)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = l.Dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// startNSD starts NSD on a free port of 127.0.0.1 and waits until it
// answers for every zone.
func (l *Lab) startNSD(zones []Zone) error {
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort(netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var b strings.Builder
		fmt.Fprintf(&b, `server:
  ip-address: 127.0.0.1@%d
  port: %d
  do-ip4: yes
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: %q
  pidfile: %q
  xfrdfile: %q
  zonelistfile: %q
  xfrdir: %q
  database: ""
  logfile: %q
  verbosity: 2
  server-count: 1
  reuseport: no
  hide-version: yes
remote-control:
  control-enable: no
`, port, port, l.Dir, filepath.Join(l.Dir, "nsd.pid"), filepath.Join(l.Dir, "nsd.xfrd"),
			filepath.Join(l.Dir, "nsd.zonelist"), l.Dir, filepath.Join(l.Dir, "nsd.log"))
		for _, z := range zones {
			file := zoneFile(z.Name)
			if z.Signed {
				file += ".signed"
			}
			fmt.Fprintf(&b, "zone:\n  name: %q\n  zonefile: %q\n", z.Name, file)
		}
		conf := filepath.Join(l.Dir, "nsd.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return err
		}
		p, err := l.startProc("nsd", "-d", "-c", conf)
		if err != nil {
			return err
		}
		lastErr = waitUntil(p, 15*time.Second, func() error {
			for _, z := range zones {
				if _, err := ask(addr, z.Name, dns.TypeSOA, false); err != nil {
					return fmt.Errorf("nsd does not serve %s: %w", z.Name, err)
				}
			}
			return nil
		})
		if lastErr == nil {
			l.Authoritative = addr
			return nil
		}
		l.stopProc(p) // the port may have been taken meanwhile: try another
	}
	return fmt.Errorf("starting nsd: %w", lastErr)
}

// startUnbound starts unbound as a validating resolver with stub zones
// pointing at NSD and waits until it answers for every zone (only after
// NSD does: unbound caches failures).
func (l *Lab) startUnbound(cfg Config) error {
	ip := cfg.ResolverIP
	if !ip.IsValid() {
		ip = netip.MustParseAddr("127.0.0.1")
	}
	anchors := filepath.Join(l.Dir, "trust-anchors.ds")
	if err := os.WriteFile(anchors, []byte(strings.Join(l.TrustAnchors, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	_, authPort, _ := net.SplitHostPort(l.Authoritative)
	var lastErr error
	for try := 0; try < 5; try++ {
		port := int(cfg.ResolverPort)
		if port == 0 {
			var err error
			if port, err = freePort(ip); err != nil {
				return err
			}
		}
		addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
		var b strings.Builder
		fmt.Fprintf(&b, `server:
  interface: %s@%d
  port: %d
  do-ip4: yes
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  use-syslog: no
  logfile: %q
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  so-reuseport: no
  outgoing-range: 64
  num-queries-per-thread: 32
  do-not-query-localhost: no
  # bogus records must reach the validator, not be denied from cached NSEC
  aggressive-nsec: no
  module-config: "validator iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "test." nodefault
`, ip, port, port, l.Dir, filepath.Join(l.Dir, "unbound.pid"), filepath.Join(l.Dir, "unbound.log"))
		if len(l.TrustAnchors) > 0 {
			fmt.Fprintf(&b, "  trust-anchor-file: %q\n", anchors)
		}
		for _, z := range cfg.Zones {
			if !z.Signed {
				fmt.Fprintf(&b, "  domain-insecure: %q\n", z.Name)
			}
		}
		for _, z := range cfg.Zones {
			fmt.Fprintf(&b, "stub-zone:\n  name: %q\n  stub-addr: 127.0.0.1@%s\n", z.Name, authPort)
		}
		b.WriteString("remote-control:\n  control-enable: no\n")
		conf := filepath.Join(l.Dir, "unbound.conf")
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return err
		}
		p, err := l.startProc("unbound", "-d", "-c", conf)
		if err != nil {
			return err
		}
		lastErr = waitUntil(p, 15*time.Second, func() error {
			for _, z := range cfg.Zones {
				m, err := ask(addr, z.Name, dns.TypeSOA, true)
				if err != nil {
					return fmt.Errorf("unbound does not answer for %s: %w", z.Name, err)
				}
				if z.Signed && !m.AuthenticatedData {
					return &permanentError{fmt.Errorf("unbound did not validate %s (no AD bit)", z.Name)}
				}
			}
			return nil
		})
		if lastErr == nil {
			l.Resolver = addr
			return nil
		}
		l.stopProc(p)
		var perm *permanentError
		if errors.As(lastErr, &perm) || cfg.ResolverPort != 0 {
			break
		}
	}
	return fmt.Errorf("starting unbound: %w", lastErr)
}

// permanentError stops waitUntil at once.
type permanentError struct{ error }

func (e *permanentError) Unwrap() error { return e.error }

// ask sends one query over UDP with a short timeout.
func ask(addr, name string, qtype uint16, dnssec bool) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	if dnssec {
		q.SetEdns0(1232, true)
		q.AuthenticatedData = true
	}
	c := &dns.Client{Timeout: time.Second}
	m, _, err := c.Exchange(q, addr)
	if err != nil {
		return nil, err
	}
	if m.Rcode != dns.RcodeSuccess {
		return m, fmt.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
	}
	return m, nil
}

// freePort returns a port that was free for both UDP and TCP on ip just
// now.
func freePort(ip netip.Addr) (int, error) {
	for try := 0; try < 50; try++ {
		pc, err := net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		_ = pc.Close()
		if err == nil {
			_ = ln.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port for udp and tcp")
}

func (l *Lab) stop() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.stopProc(l.procs[i])
	}
}

// logs returns the servers' output and log files, for a failed test.
func (l *Lab) logs() string {
	var b strings.Builder
	for _, p := range l.procs {
		fmt.Fprintf(&b, "--- %s output:\n%s\n", p.name, p.output.String())
	}
	for _, f := range []string{"nsd.log", "unbound.log"} {
		if data, err := os.ReadFile(filepath.Join(l.Dir, f)); err == nil {
			fmt.Fprintf(&b, "--- %s:\n%s\n", f, data)
		}
	}
	return b.String()
}
