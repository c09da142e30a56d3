package pool

// fifo is a growable ring buffer of pending commands. Not safe for
// concurrent use: Pipe.mu guards it.
type fifo struct {
	buf        []pending
	head, size int
}

func (q *fifo) push(p pending) {
	if q.size == len(q.buf) {
		n := 2 * len(q.buf)
		if n == 0 {
			n = 64
		}
		nb := make([]pending, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = p
	q.size++
}

func (q *fifo) pop() (pending, bool) {
	if q.size == 0 {
		return pending{}, false
	}
	p := q.buf[q.head]
	q.buf[q.head] = pending{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return p, true
}

// peek returns the oldest pending command; the queue must not be empty.
func (q *fifo) peek() pending { return q.buf[q.head] }

// drain removes and returns everything queued, oldest first.
func (q *fifo) drain() []pending {
	out := make([]pending, 0, q.size)
	for {
		p, ok := q.pop()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

func (q *fifo) len() int { return q.size }
