package config

import (
	"strings"
	"testing"
)

// TestMTASTSModulesThatCannotPass: a module whose every probe would fail
// an enforce policy (or pass it for the wrong reason) is refused at load,
// the error naming the key.
func TestMTASTSModulesThatCannotPass(t *testing.T) {
	const base = "modules:\n  sts:\n    mx_lookup: true\n    mta_sts: true\n"
	tests := []struct {
		name, module, wantErr string
	}{
		{"tls none", "    tls: none\n",
			`modules.sts.mta_sts: needs tls: starttls or implicit: the policy requires a certificate valid for each MX host's name, which a dialog without TLS never shows`},
		{"tls left at its default (none)", "",
			`modules.sts.mta_sts: needs tls: starttls or implicit`},
		{"insecure_skip_verify", "    tls: starttls\n    tls_config: {insecure_skip_verify: true}\n",
			`modules.sts.mta_sts: cannot go with tls_config.insecure_skip_verify: the policy requires the certificate to be verified, and skipping verification fails every MX`},
		{"server_name", "    tls: starttls\n    tls_config: {server_name: mx.example.org}\n",
			`modules.sts.mta_sts: cannot go with tls_config.server_name: the policy checks each MX host's certificate against that host's own name, which server_name would replace`},
		{"starttls", "    tls: starttls\n", ""},
		{"implicit", "    tls: implicit\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.module), ".")
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v\nwant it to hold %q", err, tc.wantErr)
			}
		})
	}
	// The same TLS settings without mta_sts stay valid.
	for _, m := range []string{"    tls: starttls\n    tls_config: {insecure_skip_verify: true}\n",
		"    tls: starttls\n    tls_config: {server_name: mx.example.org}\n"} {
		if _, err := Parse([]byte("modules:\n  plain:\n    mx_lookup: true\n"+m), "."); err != nil {
			t.Errorf("without mta_sts %q: %v", m, err)
		}
	}
}
