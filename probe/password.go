package probe

import (
	"errors"
	"fmt"
	"strings"
)

// MaxPasswordFileSize bounds a password_file: a password, not a data file.
const MaxPasswordFileSize = 4096

// readPasswordFile reads a password file (see readSecretFile).
func readPasswordFile(path string) (string, error) {
	return readSecretFile(path, MaxPasswordFileSize)
}

// readSecretFile reads a one-line secret file (a password, a client secret,
// a bearer token) of at most limit bytes (see readRegularFile); one
// trailing newline is dropped. Errors name the file, never its content;
// the caller says which key it is.
func readSecretFile(path string, limit int64) (string, error) {
	b, err := readRegularFile(path, limit)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case s == "":
		return "", fmt.Errorf("%s is empty", path)
	case strings.ContainsAny(s, "\r\n\x00"):
		return "", errors.New(path + " holds more than one line")
	}
	return s, nil
}
