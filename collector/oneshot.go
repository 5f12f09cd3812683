package collector

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// UsageError is a mistake in what the one-shot command was asked: an unknown
// module or a malformed target.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ProbeOnce runs one probe of target with the named module, as the `probe`
// command does: the transcript goes to w as it happens, then an explanation
// of every non-2xx reply and the verdict. timeout, when positive, replaces
// the module's. It reports whether the probe succeeded; the error is a
// *UsageError when nothing could be probed.
func ProbeOnce(ctx context.Context, c *Config, moduleName, target string, timeout time.Duration, w io.Writer) (bool, error) {
	m, ok := c.Modules[moduleName]
	if !ok {
		return false, &UsageError{fmt.Errorf("unknown module %q", moduleName)}
	}
	spec, err := newProbeSpec(m, moduleName, target)
	if err != nil {
		return false, &UsageError{err}
	}
	if timeout <= 0 {
		timeout = time.Duration(m.Timeout)
	}
	var mu sync.Mutex
	spec.transcript = func(l smtp.TranscriptLine) {
		mu.Lock()
		fmt.Fprintln(w, l.String())
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o := spec.run(ctx)
	writeReport(w, nil, o)
	return o.success, nil
}
