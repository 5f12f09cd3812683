package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// MaxPasswordFileSize bounds a password_file: a password, not a data file.
const MaxPasswordFileSize = 4096

// readPasswordFile reads a password file; one trailing newline is dropped.
// It must be a regular file of at most MaxPasswordFileSize bytes: it is
// opened non-blocking, so a FIFO or a device fails at once instead of
// hanging a reload or a probe, and /dev/zero cannot fill memory. Errors name
// the file, never its content.
func readPasswordFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("password_file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxPasswordFileSize+1))
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	if len(b) > MaxPasswordFileSize {
		return "", fmt.Errorf("password_file %s is larger than %d bytes", path, MaxPasswordFileSize)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case s == "":
		return "", fmt.Errorf("password_file %s is empty", path)
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", errors.New("password_file " + path + " holds more than one line")
	}
	return s, nil
}
