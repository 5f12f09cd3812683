package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// scrapeTimeoutHeader is the header Prometheus sets to its scrape timeout.
const scrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// maxScrapeTimeout bounds the header: nothing scrapes for longer than a day.
const maxScrapeTimeout = 86400

// scrapeTimeout reads the scrape timeout header less offset; 0 without the
// header. Only plain decimal seconds are accepted ("10", "9.5"): NaN, Inf,
// hex floats, exponents, signs and underscores are refused. A header at or
// below the offset is used whole, since nothing would remain otherwise.
func scrapeTimeout(r *http.Request, offset float64) (time.Duration, error) {
	v := r.Header.Get(scrapeTimeoutHeader)
	if v == "" {
		return 0, nil
	}
	if !plainDecimal(v) {
		return 0, fmt.Errorf("invalid %s header %q: want decimal seconds", scrapeTimeoutHeader, v)
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs <= 0 || secs > maxScrapeTimeout {
		return 0, fmt.Errorf("invalid %s header %q: want seconds from 0 to %d", scrapeTimeoutHeader, v, maxScrapeTimeout)
	}
	if secs > offset {
		secs -= offset
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// plainDecimal accepts digits with at most one '.', at most 20 bytes.
func plainDecimal(s string) bool {
	if s == "" || len(s) > 20 || s == "." {
		return false
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return true
}
