package probe

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	promconfig "github.com/prometheus/common/config"

	"github.com/smtp-exporter/smtp_exporter/config"
)

// MaxTLSFileSize bounds a ca_file, cert_file or key_file: a CA bundle of
// every public root is a few hundred KiB.
const MaxTLSFileSize = 4 << 20

// newTLSConfig is promconfig.NewTLSConfig with the files of c (ca_file,
// cert_file, key_file) read here, once, as password files are: regular
// files of at most MaxTLSFileSize, opened non-blocking (prometheus/common
// opens them blocking and reads them whole, so a FIFO would hang a reload
// and /dev/zero would fill memory). Their content is handed on inline, so
// a client certificate is read at load, not at every handshake: rotate it
// with a reload.
func newTLSConfig(c promconfig.TLSConfig) (*tls.Config, error) {
	if c.CAFile != "" {
		b, err := readRegularFile(c.CAFile, MaxTLSFileSize)
		if err != nil {
			return nil, config.AtKey(err, "ca_file")
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return nil, config.AtKey(fmt.Errorf("%s holds no PEM certificate", c.CAFile), "ca_file")
		}
		c.CA, c.CAFile = string(b), ""
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, key := []byte(c.Cert), []byte(c.Key)
		var err error
		if c.CertFile != "" {
			if cert, err = readRegularFile(c.CertFile, MaxTLSFileSize); err != nil {
				return nil, config.AtKey(err, "cert_file")
			}
		}
		if c.KeyFile != "" {
			if key, err = readRegularFile(c.KeyFile, MaxTLSFileSize); err != nil {
				return nil, config.AtKey(err, "key_file")
			}
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return nil, config.AtKey(fmt.Errorf("%s and %s are not a certificate and its private key: %w", or(c.CertFile, "cert"), or(c.KeyFile, "key"), err), "cert_file")
		}
		c.Cert, c.CertFile = string(cert), ""
		c.Key, c.KeyFile = promconfig.Secret(key), ""
	}
	return promconfig.NewTLSConfig(&c)
}

// or is s, or else the default d.
func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
