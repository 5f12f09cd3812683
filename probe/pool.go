package probe

import (
	"context"
	"fmt"
)

// Pool is a fixed number of connection slots: every connection a probe
// dials takes one for as long as it is open (an MX probe takes one per
// exchanger). It bounds concurrent connections, and so the memory they
// hold, across all the probes that share it.
type Pool struct{ slots chan struct{} }

// NewPool returns a pool of n slots (at least 1).
func NewPool(n int) *Pool { return &Pool{slots: make(chan struct{}, max(n, 1))} }

// TryAcquire takes a slot if one is free now.
func (p *Pool) TryAcquire() bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release frees a slot taken by TryAcquire or Admit.
func (p *Pool) Release() { <-p.slots }

// Admit waits for a slot until ctx ends; it is a Hooks.Admit.
func (p *Pool) Admit(ctx context.Context) (func(), error) {
	select {
	case p.slots <- struct{}{}:
		return p.Release, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a connection slot (%d in use): %w", cap(p.slots), ctx.Err())
	}
}

// InUse is how many slots are taken.
func (p *Pool) InUse() int { return len(p.slots) }

// Size is how many slots there are.
func (p *Pool) Size() int { return cap(p.slots) }
