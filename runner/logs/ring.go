package logs

// ring keeps the last cap lines.
type ring struct {
	buf      []Line
	start, n int
	cap      int
}

func newRing(capacity int) ring { return ring{cap: capacity} }

func (r *ring) push(l Line) {
	if r.cap == 0 {
		return
	}
	if r.buf == nil {
		r.buf = make([]Line, r.cap)
	}
	if r.n < r.cap {
		r.buf[(r.start+r.n)%r.cap] = l
		r.n++
		return
	}
	r.buf[r.start] = l
	r.start = (r.start + 1) % r.cap
}

// last copies the newest k lines, oldest first; k <= 0 or past what is kept
// means all of them.
func (r *ring) last(k int) []Line {
	if k <= 0 || k > r.n {
		k = r.n
	}
	out := make([]Line, k)
	for i := range k {
		out[i] = r.buf[(r.start+r.n-k+i)%r.cap]
	}
	return out
}
