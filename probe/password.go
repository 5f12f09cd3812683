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

// readPasswordFile reads a password file (see readSecretFile).
func readPasswordFile(path string) (string, error) {
	return readSecretFile("password_file", path, MaxPasswordFileSize)
}

// readSecretFile reads the one-line secret file that the config's key
// names; one trailing newline is dropped. See readRegularFile.
func readSecretFile(key, path string, limit int) (string, error) {
	b, err := readRegularFile(key, path, limit)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case s == "":
		return "", fmt.Errorf("%s %s is empty", key, path)
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", errors.New(key + " " + path + " holds more than one line")
	}
	return s, nil
}

// readRegularFile reads the file that the config's key names. It must be a
// regular file of at most limit bytes: it is opened non-blocking, so a FIFO
// or a device fails at once instead of hanging a reload or a probe, and
// /dev/zero cannot fill memory. Errors name the key and the file, never its
// content.
func readRegularFile(key, path string, limit int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file (%s)", key, path, fi.Mode().Type())
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", key, path, limit)
	}
	return b, nil
}
