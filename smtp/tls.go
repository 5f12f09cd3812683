package smtp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// handshake runs a TLS client handshake over p.conn and records the state.
// Certificates are verified by the probe itself, after the server's chain has
// been recorded, so an expired or untrusted certificate is still reported
// (with its dates) while the probe fails with ReasonTLS.
func (p *prober) handshake(phase Phase) *Error {
	cfg := p.tlsConfig()
	state := &TLSState{ServerName: cfg.ServerName}
	if p.sni != "" {
		cfg.ServerName = p.sni // sent as SNI only: WebPKI checks state.ServerName
	}
	p.res.TLS = state
	verify := !cfg.InsecureSkipVerify
	roots := cfg.RootCAs
	// With the caller's check deciding (DANE), WebPKI is still recorded, as
	// MTA-STS needs it, but does not fail the handshake.
	callerDecides := p.tlsCheck != nil && p.tlsCheck.Decides
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		state.Version = cs.Version
		state.CipherSuite = cs.CipherSuite
		state.PeerCertificates = cs.PeerCertificates
		if !verify {
			return nil
		}
		chains, err := verifyChain(cs.PeerCertificates, state.ServerName, roots)
		state.Verified = err == nil
		state.VerifyError = err
		state.VerifiedChains = chains
		if callerDecides {
			return nil
		}
		return err
	}
	tc := tls.Client(p.conn, cfg)
	err := tc.HandshakeContext(p.ctx)
	if err != nil {
		reason := ReasonTLS
		if p.ctx.Err() != nil || isTimeout(err) {
			reason = ReasonTimeout
		}
		p.note("TLS handshake failed: %v", err)
		p.notePresentedChain(state)
		return &Error{Phase: phase, Reason: reason, Err: fmt.Errorf("tls handshake: %w", err)}
	}
	state.HandshakeComplete = true
	p.conn = tc
	p.tls = true
	p.note("TLS handshake done: %s, %s, certificate for %s expires %s (verified: %t)",
		state.VersionName(), state.CipherSuiteName(), leafName(state), state.EarliestExpiry().UTC().Format(time.RFC3339), state.Verified)
	if p.tlsCheck != nil && p.tlsCheck.Verify != nil {
		if failure := p.tlsCheck.Verify(phase, state); failure != nil {
			p.hooked = true
			return failure
		}
	}
	return nil
}

// tlsConfig returns a copy of the module's TLS config with ServerName set.
func (p *prober) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if p.opts.TLSConfig != nil {
		cfg = p.opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = p.res.Host
	}
	return cfg
}

// notePresentedChain writes the chain the server presented to the
// transcript, one note per certificate, so that a failed verification shows
// what was presented: subject, issuer, names and validity.
func (p *prober) notePresentedChain(s *TLSState) {
	for i, c := range s.PeerCertificates {
		names := slices.Clone(c.DNSNames)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 {
			names = []string{"(none)"}
		}
		p.note("presented certificate %d: subject %s, issuer %s, names %s, valid %s to %s", i, c.Subject, c.Issuer, strings.Join(names, ", "),
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
}

// verifyChain checks the chain against roots (the system's when nil) and the
// server name, which may be an IP literal, and returns the verified chains.
func verifyChain(certs []*x509.Certificate, name string, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("the server sent no certificate")
	}
	// DNSName may be an IP literal: x509 then checks the IP SANs.
	opts := x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	return certs[0].Verify(opts)
}

func leafName(s *TLSState) string {
	if len(s.PeerCertificates) == 0 {
		return "(none)"
	}
	c := s.PeerCertificates[0]
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}
