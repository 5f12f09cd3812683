package smtp

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// redacted stands, in the transcript, in replies and in errors, for every
// line that carries a credential and for every secret a server echoes.
const redacted = "<redacted>"

// secrets is what the probe must never show: the password and every
// encoding of it that was sent. A server may echo any of them back in a
// reply, which then reaches the Result, errors and the transcript.
type secrets struct {
	list []string // longest first, so a longer one is replaced whole
}

// add registers a secret (and the forms SafeText and %q would give it).
func (s *secrets) add(secret string) {
	if secret == "" {
		return
	}
	quoted := strconv.Quote(secret)
	for _, v := range []string{secret, SafeText(secret), quoted[1 : len(quoted)-1]} {
		if !slices.Contains(s.list, v) {
			s.list = append(s.list, v)
		}
	}
	slices.SortStableFunc(s.list, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
}

// scrub replaces every secret in text by <redacted>.
func (s *secrets) scrub(text string) string {
	for _, v := range s.list {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, redacted)
		}
	}
	return text
}

// clean is what server text goes through before it is kept or shown:
// secrets scrubbed, then made safe.
func (s *secrets) clean(text string) string {
	return SafeText(s.scrub(text))
}
