package probe

import (
	"errors"
	"fmt"
	"strings"
)

// MaxPasswordFileSize bounds a password_file: a password, not a data file.
const MaxPasswordFileSize = 4096

// readPasswordFile reads a password file (see readRegularFile); one
// trailing newline is dropped. Errors name the file, never its content;
// the caller says which key it is.
func readPasswordFile(path string) (string, error) {
	b, err := readRegularFile(path, MaxPasswordFileSize)
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
