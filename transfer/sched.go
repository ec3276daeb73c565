package transfer

import (
	"math/rand/v2"
	"time"
)

// The scheduler's decisions are pure functions of its state, so they can be
// tested without a network: picker chooses which leaf to ask a peer for,
// window sizes each peer's pipeline from its measured rate.

// maxDuplicates is how many peers may be asked for the same leaf in the
// endgame.
const maxDuplicates = 3

// picker chooses leaves rarest-first across the swarm's have-maps.
type picker struct {
	need     []bool // leaf still missing
	avail    []int  // peers known to have the leaf
	inflight []int  // outstanding requests for the leaf
	left     int    // missing leaves
	unasked  int    // missing leaves with no request outstanding
	rng      *rand.Rand
}

func newPicker(n int, seed uint64) *picker {
	p := &picker{need: make([]bool, n), avail: make([]int, n), inflight: make([]int, n), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := range p.need {
		p.need[i] = true
	}
	p.left, p.unasked = n, n
	return p
}

// done marks leaf i as held.
func (p *picker) done(i int) {
	if !p.need[i] {
		return
	}
	p.need[i] = false
	p.left--
	if p.inflight[i] == 0 {
		p.unasked--
	}
}

// requested and released track outstanding requests for leaf i.
func (p *picker) requested(i int) {
	if p.inflight[i] == 0 && p.need[i] {
		p.unasked--
	}
	p.inflight[i]++
}

func (p *picker) released(i int) {
	if p.inflight[i] == 0 {
		return
	}
	p.inflight[i]--
	if p.inflight[i] == 0 && p.need[i] {
		p.unasked++
	}
}

// endgame reports whether every missing leaf is already requested.
func (p *picker) endgame() bool { return p.unasked == 0 && p.left > 0 }

// pick returns the rarest missing leaf that has(i) and that no request is
// outstanding for, random among equally rare ones, skipping those asked(i)
// (asked of this peer already: a request that timed out is kept). In the
// endgame it may return a leaf already requested elsewhere, least
// duplicated first.
func (p *picker) pick(has func(int) bool, asked func(int) bool) (int, bool) {
	n := len(p.need)
	if n == 0 || p.left == 0 {
		return 0, false
	}
	start := p.rng.IntN(n)
	best, bestAvail := -1, 0
	eg := p.endgame()
	for k := range n {
		i := (start + k) % n
		if !p.need[i] || !has(i) {
			continue
		}
		if eg {
			if p.inflight[i] >= maxDuplicates || asked(i) {
				continue
			}
			// least duplicated first, then rarest
			if best < 0 || p.inflight[i] < p.inflight[best] || (p.inflight[i] == p.inflight[best] && p.avail[i] < bestAvail) {
				best, bestAvail = i, p.avail[i]
			}
			continue
		}
		if p.inflight[i] > 0 || asked(i) {
			continue
		}
		if best < 0 || p.avail[i] < bestAvail {
			best, bestAvail = i, p.avail[i]
			if bestAvail <= 1 {
				break // nothing is rarer than a single copy
			}
		}
	}
	return best, best >= 0
}

// window sizes one peer's request pipeline from its measured delivery rate:
// enough requests to cover queueTime at that rate, so the link never idles
// waiting for a round trip, and no more, so a slow peer holds few leaves.
type window struct {
	rate     float64 // bytes per second, smoothed
	last     time.Time
	size     int
	min, max int
	started  bool
}

// queueTime is how much transfer time a peer's pipeline should hold (as
// libtorrent's request_queue_time).
const queueTime = 2 * time.Second

func newWindow(min, max int) window { return window{size: min, min: min, max: max} }

// delivered records a block of n bytes arriving at now and resizes the
// window: slow start (+1 a block) until the rate is known, then rate ×
// queueTime / block size.
func (w *window) delivered(n int, now time.Time) {
	if !w.started {
		w.started, w.last = true, now
		w.grow()
		return
	}
	dt := now.Sub(w.last).Seconds()
	w.last = now
	if dt <= 0 {
		dt = 1e-6
	}
	inst := float64(n) / dt
	if w.rate == 0 {
		w.rate = inst
	} else {
		w.rate = 0.8*w.rate + 0.2*inst
	}
	target := int(w.rate*queueTime.Seconds()/float64(max(n, 1))) + 1
	switch {
	case target > w.size:
		w.grow()
	case target < w.size:
		w.size = max(target, w.min)
	}
}

func (w *window) grow() {
	if w.size < w.max {
		w.size++
	}
}

// timedOut halves the window after a request went unanswered too long.
func (w *window) timedOut() {
	w.size = max(w.size/2, w.min)
}

// timeout is how long a request may be outstanding before its leaf is
// asked of someone else: the time the pipeline ahead of it should take at
// the measured rate, times 3, and never under floor.
func (w *window) timeout(blockSize int, floor time.Duration) time.Duration {
	if w.rate <= 0 {
		return 4 * floor
	}
	return max(3*w.expect(w.size, blockSize, floor), floor)
}

// expect is how long n blocks should take at the measured rate; before a
// rate is known, 2 × floor.
func (w *window) expect(n, blockSize int, floor time.Duration) time.Duration {
	if w.rate <= 0 {
		return 2 * floor
	}
	return time.Duration(float64(n*blockSize) / w.rate * float64(time.Second))
}
