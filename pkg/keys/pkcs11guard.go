package keys

import (
	"fmt"
	"sync"
	"time"
)

// A call into a PKCS#11 module is C code that Go cannot interrupt: when
// the token is remote (p11-kit-client.so talking to a server through an ssh
// tunnel) and the other end accepts but never answers, the call blocks
// forever, and with it the DKMS build that ran the hook.
//
// callWithin runs each call on its own goroutine and waits at most the
// timeout. A call that overruns is abandoned: its goroutine stays blocked
// in C (the OS thread with it) until the module returns, and until then
// every further call into that module fails at once with
// ErrTokenUnreachable instead of queueing behind it (the module's own locks
// would make it wait forever too). The tool's commands are short-lived:
// they report the token unreachable, leave unsigned what they could not
// sign (a module is only replaced after its signature is made), and exit;
// the blocked thread ends with the process. A separate process per token
// session would let one command retry after a hang, at the price of a
// second process holding the PIN; `sign --dkms` later does the catching up
// instead.

type moduleGuard struct {
	mu       sync.Mutex
	busy     string // the overrunning call, "" when none
	busyCall uint64 // its number
	calls    uint64
}

var (
	guardsMu sync.Mutex
	guards   = map[string]*moduleGuard{}
)

func guardFor(module string) *moduleGuard {
	guardsMu.Lock()
	defer guardsMu.Unlock()
	g := guards[module]
	if g == nil {
		g = &moduleGuard{}
		guards[module] = g
	}
	return g
}

// callWithin runs f, a call into the PKCS#11 module named module, and
// returns its error, or ErrTokenUnreachable if it has not returned within
// d. what names the call in errors ("open", "sign").
func callWithin(module string, d time.Duration, what string, f func() error) error {
	g := guardFor(module)
	g.mu.Lock()
	if g.busy != "" {
		busy := g.busy
		g.mu.Unlock()
		return fmt.Errorf("%s: %w: an earlier call (%s) has not returned", what, ErrTokenUnreachable, busy)
	}
	g.calls++
	call := g.calls
	g.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := f()
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.busyCall == call {
			g.busy, g.busyCall = "", 0 // the overrun call came back: the module is usable again
		}
		done <- err // buffered; sent under mu, so the waiter sees either it or busy
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case err := <-done: // returned just now
		return err
	default:
	}
	g.busy, g.busyCall = what, call
	return fmt.Errorf("%s: %w: no answer within %v", what, ErrTokenUnreachable, d)
}
