package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// KeyError is what is wrong with one key of the configuration: the key's
// path from the top of the file ("modules.default.port"), its line when
// known, and the reason in the words of the config file.
type KeyError struct {
	// Path holds the keys from the top; a list item is "[0]".
	Path []string
	// Line is the key's line in the file, 0 when not known.
	Line int
	Err  error
}

func (e *KeyError) Error() string {
	if len(e.Path) == 0 {
		return e.Err.Error()
	}
	return KeyPath(e.Path...) + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *KeyError) Unwrap() error { return e.Err }

// AtKey says that err is about keys (relative to where err was found): the
// path of a KeyError gets keys in front, any other error becomes a KeyError
// at keys. nil stays nil.
func AtKey(err error, keys ...string) error {
	if err == nil {
		return nil
	}
	if ke, ok := err.(*KeyError); ok {
		return &KeyError{Path: append(slices.Clone(keys), ke.Path...), Line: ke.Line, Err: ke.Err}
	}
	return &KeyError{Path: slices.Clone(keys), Err: err}
}

// keyErrorf is a KeyError at keys.
func keyErrorf(keys []string, format string, args ...any) error {
	return &KeyError{Path: keys, Err: fmt.Errorf(format, args...)}
}

// at is a KeyError at the one key; the caller's AtKey adds where it is.
func at(key string, format string, args ...any) error {
	return keyErrorf([]string{key}, format, args...)
}

// Index is the path element of a list's i-th item: "[0]".
func Index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// KeyPath writes a path as the config file nests it: modules.default.port,
// targets[0].target; a name that is not a plain word (a module named
// "a.b") in quotes.
func KeyPath(keys ...string) string {
	var b strings.Builder
	for i, k := range keys {
		switch {
		case strings.HasPrefix(k, "[") && strings.HasSuffix(k, "]"):
		case i > 0:
			b.WriteByte('.')
		}
		if k == "" || strings.ContainsFunc(k, notPlain) {
			k = strconv.Quote(k)
		}
		b.WriteString(k)
	}
	return b.String()
}

// FileError is an error of the config file at path: "config c.yml:4:
// modules.default.port: ..." with the line where it is known.
func FileError(path string, c *Config, err error) error {
	var ke *KeyError
	if errors.As(err, &ke) {
		line := ke.Line
		if line == 0 && c != nil {
			line = c.lines[KeyPath(ke.Path...)]
		}
		if line > 0 {
			return fmt.Errorf("config %s:%d: %w", path, line, err)
		}
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// notPlain reports whether r needs quotes in a key path.
func notPlain(r rune) bool {
	plain := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-[]", r)
	return !plain
}
