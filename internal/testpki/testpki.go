// Package testpki makes throw-away certificates for tests: a CA and a server
// certificate signed by it.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA and a server certificate.
type PKI struct {
	CA, Leaf *x509.Certificate
	// Pool trusts the CA.
	Pool *x509.CertPool
	// Server presents the leaf and the CA, for tls.Server.
	Server *tls.Config

	caDER, leafDER []byte
	key            *ecdsa.PrivateKey
}

// New makes a CA valid for 30 days and a server certificate for names (DNS
// names or IP addresses) valid from notBefore to notAfter; its subject CN is
// the first name.
func New(t testing.TB, notBefore, notAfter time.Time, names ...string) *PKI {
	t.Helper()
	return build(t, notBefore, notAfter, names[0], names)
}

// NewNamed makes a PKI whose server certificate, valid for the next 12
// hours, has subject CN cn and exactly the subject alternative names sans
// (none: a certificate named by its CN alone, as older ones are).
func NewNamed(t testing.TB, cn string, sans ...string) *PKI {
	t.Helper()
	return build(t, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour), cn, sans)
}

func build(t testing.TB, notBefore, notAfter time.Time, cn string, names []string) *PKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp_exporter test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &PKI{
		CA: ca, Leaf: leaf, Pool: pool,
		Server:  &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key, Leaf: leaf}}},
		caDER:   caDER,
		leafDER: leafDER,
		key:     key,
	}
}

// Valid makes a PKI whose server certificate, for names, is valid for the
// next 12 hours.
func Valid(t testing.TB, names ...string) *PKI {
	return New(t, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour), names...)
}

// WriteFiles writes ca.pem, cert.pem and key.pem into dir and returns their
// paths.
func (p *PKI) WriteFiles(t testing.TB, dir string) (ca, cert, key string) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(p.key)
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		ca:   {Type: "CERTIFICATE", Bytes: p.caDER},
		cert: {Type: "CERTIFICATE", Bytes: p.leafDER},
		key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// CAPEM is the CA certificate in PEM, for a bundle of several PKIs' CAs.
func (p *PKI) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.caDER})
}
