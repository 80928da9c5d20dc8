package store

import (
	"context"
	"sync"
)

// group commits small writes that callers make at the same time in one
// transaction: the first caller commits what is queued, then what queued
// up meanwhile, until nothing is left; the others wait for their result.
// Each commit of the database syncs the disk (synchronous=FULL), several
// milliseconds on an SD card: 50 components started together then wait
// for one or two syncs instead of 50 in a row.
type group struct {
	mu      sync.Mutex
	queue   []*groupWrite
	running bool
}

type groupWrite struct {
	fn   func(*Tx) error
	done chan error
}

// grouped runs fn in a transaction, possibly shared with other grouped
// writes; it returns fn's error or the commit's. A write that fails makes
// its batch roll back, and each of that batch is then run alone, so that
// one caller's failure is never another's. The writes run to their end
// whatever ctx does: they are short, and bounded by the busy timeout.
func (s *Store) grouped(ctx context.Context, fn func(*Tx) error) error {
	w := &groupWrite{fn: fn, done: make(chan error, 1)}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		s.commitQueued(context.WithoutCancel(ctx))
	}
	return <-w.done
}

// commitQueued commits the queued writes, batch after batch, until the
// queue is empty.
func (s *Store) commitQueued(ctx context.Context) {
	g := &s.group
	for {
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		err := s.Tx(ctx, func(tx *Tx) error {
			for _, w := range batch {
				if err := w.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(batch) > 1 {
			for _, w := range batch {
				w.done <- s.Tx(ctx, w.fn)
			}
			continue
		}
		for _, w := range batch {
			w.done <- err
		}
	}
}
