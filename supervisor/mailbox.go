package supervisor

import "sync"

// mailbox is an unbounded FIFO queue with a wake-up channel. Senders never
// block, so two goroutines that send to each other cannot deadlock.
type mailbox[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

func newMailbox[T any]() *mailbox[T] {
	return &mailbox[T]{wake: make(chan struct{}, 1)}
}

// put appends v and wakes the receiver.
func (m *mailbox[T]) put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// ready is signalled after a put; drain then.
func (m *mailbox[T]) ready() <-chan struct{} { return m.wake }

// drain takes everything queued, oldest first.
func (m *mailbox[T]) drain() []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.items
	m.items = nil
	return out
}
