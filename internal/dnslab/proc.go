package dnslab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process of the lab.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	output *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// startProc starts a server in its own process group, so that stopping it
// also stops the children it forks (NSD's xfrd and server processes).
func (l *Lab) startProc(name string, args ...string) (*proc, error) {
	path, err := lookPath(name)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{}), output: &lockedBuffer{}}
	p.cmd.Dir = l.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	return p, nil
}

// waitUntil polls ready until it succeeds, the process exits, or timeout
// passes; a permanentError ends it at once.
func waitUntil(p *proc, timeout time.Duration, ready func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		var perm *permanentError
		if err == nil || errors.As(err, &perm) {
			return err
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, strings.TrimSpace(p.output.String()))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.name, timeout, err)
		case <-tick.C:
		}
	}
}

// stopProc ends a server: SIGTERM to its process group, SIGKILL after a
// grace period.
func (l *Lab) stopProc(p *proc) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// NSD's children leave a moment after their parent: wait for the group
	// to be empty (the id cannot be reused while it is not), then kill
	// what is left of it.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
