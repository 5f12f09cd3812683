package tlsrpt

// The golden-file tests' -update flag is defined by testenv, so that
// "go test ./... -run Golden -args -update" runs in every package.
import _ "github.com/smtp-exporter/smtp_exporter/internal/testenv"
