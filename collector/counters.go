package collector

import (
	"container/list"
	"sync"

	"github.com/smtp-exporter/smtp_exporter/probe"
	"github.com/smtp-exporter/smtp_exporter/smtp"
)

// ReplyCounts holds how many replies of each class (2xx, 3xx, 4xx, 5xx) a
// target has sent.
type ReplyCounts [4]uint64

// CounterKey names one counted series: a module and a normalised target
// ("host:port", or the domain), and for mx_lookup modules one exchanger of
// the target at its preference, and with addresses: all one address: the
// labels of the row the replies were written in, so that no two rows share
// a counter.
type CounterKey struct {
	Module, Target, MX string
	// Preference is the exchanger's, with mx_lookup.
	Preference string
	// Address is the address dialled, with addresses: all.
	Address string
}

// ReplyCounters keeps reply-class counters per (module, target) across
// scrapes and reloads. It holds at most a fixed number of series; when full,
// the least recently probed is forgotten first, so arbitrary /probe targets
// cannot grow memory without bound. It is safe for concurrent use.
type ReplyCounters struct {
	mu      sync.Mutex
	limit   int
	order   *list.List // of *counterEntry, most recently probed first
	entries map[CounterKey]*list.Element
	evicted uint64
}

type counterEntry struct {
	key    CounterKey
	counts ReplyCounts
}

// NewReplyCounters returns a store of at most limit series (at least 1).
func NewReplyCounters(limit int) *ReplyCounters {
	if limit < 1 {
		limit = 1
	}
	return &ReplyCounters{limit: limit, order: list.New(), entries: make(map[CounterKey]*list.Element)}
}

// Add counts every reply of res under key and returns the totals.
func (c *ReplyCounters) Add(key CounterKey, res *smtp.Result) ReplyCounts {
	var add ReplyCounts
	if res != nil {
		for _, p := range res.Phases {
			if p.Reply != nil {
				if i := p.Reply.Class() - 2; i >= 0 && i < 4 {
					add[i]++
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if ok {
		c.order.MoveToFront(el)
	} else {
		el = c.order.PushFront(&counterEntry{key: key})
		c.entries[key] = el
		c.trim()
	}
	e := el.Value.(*counterEntry)
	for i := range add {
		e.counts[i] += add[i]
	}
	return e.counts
}

// AddOutcome counts the replies of every host of o, under o's module and
// normalised target (and each row's exchanger, preference and address), and
// returns the totals per host, in the order of o.Hosts.
func (c *ReplyCounters) AddOutcome(o *probe.Outcome) []ReplyCounts {
	counts := make([]ReplyCounts, len(o.Hosts))
	for i, h := range o.Hosts {
		counts[i] = c.Add(CounterKey{Module: o.Target.Plan.Name, Target: o.Target.Key, MX: h.Name, Preference: h.Preference,
			Address: h.Address}, h.Result)
	}
	return counts
}

// Retain forgets every series for which keep is false.
func (c *ReplyCounters) Retain(keep func(CounterKey) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, el := range c.entries {
		if !keep(key) {
			c.order.Remove(el)
			delete(c.entries, key)
		}
	}
}

// SetLimit changes the bound, forgetting the least recently probed series
// beyond it.
func (c *ReplyCounters) SetLimit(limit int) {
	if limit < 1 {
		limit = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = limit
	c.trim()
}

// trim forgets the least recently probed series beyond the limit.
func (c *ReplyCounters) trim() {
	for c.order.Len() > c.limit {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.entries, old.Value.(*counterEntry).key)
		c.evicted++
	}
}

// Len is the number of series held.
func (c *ReplyCounters) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Evicted is how many series were forgotten to stay within the bound.
func (c *ReplyCounters) Evicted() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted
}
