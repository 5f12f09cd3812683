package probe

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smtp-exporter/smtp_exporter/config"
	"github.com/smtp-exporter/smtp_exporter/internal/testpki"
)

// TestTLSFilesAreCheckedLikePasswordFiles: ca_file, cert_file and key_file,
// in every TLS config (the module's tls_config, mta_sts_tls_config, the
// delivery check's tls_config), must be regular files of a bounded size: a
// FIFO fails at once instead of hanging --config.check and reloads, and
// /dev/zero or a huge file cannot fill memory.
func TestTLSFilesAreCheckedLikePasswordFiles(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testpki.Valid(t, "mx.test").WriteFiles(t, dir)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.pem")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		fifo:        fifo + " is a named pipe (FIFO), not a regular file",
		"/dev/zero": "/dev/zero is a device, not a regular file",
		dir:         dir + " is a directory, not a regular file",
		huge:        huge + " is larger than 4 MiB",
	}
	places := map[string]struct{ module, key string }{
		"tls_config": {"tls: starttls\n    tls_config: {%s}\n", "tls_config"},
		"mta_sts_tls_config": {"mx_lookup: true\n    tls: starttls\n    mta_sts: true\n    mta_sts_tls_config: {%s}\n",
			"mta_sts_tls_config"},
		"delivery_check": {"mail_from: a@example.org\n    rcpt_to: [b@example.org]\n    send_data: true\n" +
			"    delivery_check: {imap: imap.example.org, username: u, password: p, tls_config: {%s}}\n", "delivery_check.tls_config"},
	}
	for place, p := range places {
		for file, why := range bad {
			for _, tc := range []struct{ key, tls string }{
				{"ca_file", "ca_file: " + file},
				{"cert_file", "cert_file: " + file + ", key_file: " + key},
				{"key_file", "cert_file: " + cert + ", key_file: " + file},
			} {
				t.Run(place+"/"+tc.key+"/"+filepath.Base(file), func(t *testing.T) {
					err := buildWithin(t, "modules:\n  m:\n    "+strings.Replace(p.module, "%s", tc.tls, 1))
					want := "modules.m." + p.key + "." + tc.key + ": " + why
					if errString(err) != want {
						t.Errorf("Build:\n got: %v\nwant: %s", err, want)
					}
				})
			}
		}
		t.Run(place+"/good", func(t *testing.T) {
			if err := buildWithin(t, "modules:\n  m:\n    "+strings.Replace(p.module, "%s", "ca_file: "+ca+", cert_file: "+cert+", key_file: "+key, 1)); err != nil {
				t.Errorf("good files: %v", err)
			}
		})
	}
	for tls, want := range map[string]string{
		"ca_file: " + notPEM:                          "modules.m.tls_config.ca_file: " + notPEM + " holds no PEM certificate",
		"cert_file: " + ca + ", key_file: " + key:     "modules.m.tls_config.cert_file: " + ca + " and " + key + " are not a certificate and its private key: tls: private key does not match public key",
		"cert_file: " + notPEM + ", key_file: " + key: "modules.m.tls_config.cert_file: " + notPEM + " and " + key + " are not a certificate and its private key: tls: failed to find any PEM data in certificate input",
	} {
		if err := buildWithin(t, "modules:\n  m:\n    tls: starttls\n    tls_config: {"+tls+"}\n"); errString(err) != want {
			t.Errorf("%s:\n got: %v\nwant: %s", tls, err, want)
		}
	}
}

// buildWithin parses and builds conf, failing the test if Build hangs.
func buildWithin(t *testing.T, conf string) error {
	t.Helper()
	c, err := config.Parse([]byte(conf), ".")
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Build(c)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("Build hangs")
		return nil
	}
}
