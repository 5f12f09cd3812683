package config

import (
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// mtastsCanPass refuses an mta_sts module whose probes could never pass an
// enforce policy, or would pass it for the wrong reason. RFC 8461 4.1
// requires of each MX host a certificate that validates (WebPKI) for the
// host's own name: without TLS there is none to see; with
// insecure_skip_verify it is never verified; and tls_config.server_name
// would check every host's certificate against one fixed name instead of
// the host's.
func (m *Module) mtastsCanPass() error {
	if !m.MTASTS {
		return nil
	}
	switch {
	case m.TLS == smtp.TLSNone:
		return at("mta_sts", "needs tls: starttls or implicit: the policy requires a certificate valid for each MX host's name, which a dialog without TLS never shows")
	case m.TLSConfig.InsecureSkipVerify:
		return at("mta_sts", "cannot go with tls_config.insecure_skip_verify: the policy requires the certificate to be verified, and skipping verification fails every MX")
	case m.TLSConfig.ServerName != "":
		return at("mta_sts", "cannot go with tls_config.server_name: the policy checks each MX host's certificate against that host's own name, which server_name would replace")
	}
	return nil
}
