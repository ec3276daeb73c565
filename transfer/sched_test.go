package transfer

import (
	"testing"
	"time"
)

func bits(idx ...int) func(int) bool {
	set := map[int]bool{}
	for _, i := range idx {
		set[i] = true
	}
	return func(i int) bool { return set[i] }
}

func none(int) bool { return false }

func TestPickerRarestFirst(t *testing.T) {
	cases := []struct {
		name  string
		avail []int
		has   []int
		want  []int // acceptable picks
	}{
		{"the single copy first", []int{3, 1, 2, 3}, []int{0, 1, 2, 3}, []int{1}},
		{"only what the peer has", []int{3, 1, 2, 3}, []int{0, 2, 3}, []int{2}},
		{"random among equals", []int{2, 2, 5, 2}, []int{0, 1, 2, 3}, []int{0, 1, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen := map[int]bool{}
			for seed := range uint64(50) {
				p := newPicker(len(c.avail), seed)
				copy(p.avail, c.avail)
				i, ok := p.pick(bits(c.has...), none)
				if !ok {
					t.Fatal("nothing picked")
				}
				seen[i] = true
			}
			for i := range seen {
				ok := false
				for _, w := range c.want {
					ok = ok || i == w
				}
				if !ok {
					t.Fatalf("picked %d, want one of %v", i, c.want)
				}
			}
			if len(c.want) > 1 && len(seen) < 2 {
				t.Fatalf("always picked %v: ties are not broken at random", seen)
			}
		})
	}
}

func TestPickerSkipsHeldAndRequested(t *testing.T) {
	p := newPicker(4, 1)
	p.done(0)
	p.requested(1)
	for range 20 {
		i, ok := p.pick(bits(0, 1, 2, 3), none)
		if !ok || i == 0 || i == 1 {
			t.Fatalf("picked %d (ok %v): held or requested leaf", i, ok)
		}
	}
	if p.endgame() {
		t.Fatal("endgame with unrequested leaves left")
	}
}

func TestPickerEndgame(t *testing.T) {
	p := newPicker(3, 1)
	p.done(0)
	p.requested(1) // from peer A
	p.requested(2) // from peer A
	if !p.endgame() {
		t.Fatal("every missing leaf requested: want endgame")
	}
	askedA := bits(1, 2)
	if _, ok := p.pick(bits(1, 2), askedA); ok {
		t.Fatal("endgame asked the same peer twice for a leaf")
	}
	i, ok := p.pick(bits(1, 2), none) // peer B
	if !ok || (i != 1 && i != 2) {
		t.Fatalf("endgame pick for another peer: %d, %v", i, ok)
	}
	p.requested(i)
	j, _ := p.pick(bits(1, 2), bits(i)) // peer B again
	if j == i {
		t.Fatal("endgame duplicated a leaf to the same peer")
	}
	// Duplicates are capped.
	q := newPicker(1, 1)
	for range maxDuplicates {
		q.requested(0)
	}
	if _, ok := q.pick(bits(0), none); ok {
		t.Fatalf("more than %d requests for one leaf", maxDuplicates)
	}
	// Once held, no longer wanted.
	p.done(1)
	p.done(2)
	if _, ok := p.pick(bits(1, 2), none); ok || p.left != 0 {
		t.Fatal("picked after everything was held")
	}
}

func TestPickerReleaseAfterTimeout(t *testing.T) {
	p := newPicker(2, 1)
	p.done(1)
	p.requested(0)
	if _, ok := p.pick(bits(0), bits(0)); ok {
		t.Fatal("leaf requested from this peer offered again")
	}
	p.released(0) // the request timed out
	if i, ok := p.pick(bits(0), none); !ok || i != 0 || p.endgame() {
		t.Fatalf("released leaf not offered to others: %d %v", i, ok)
	}
}

func TestWindowAdapts(t *testing.T) {
	const block = 1 << 20
	clock := time.Unix(0, 0)
	w := newWindow(minWindow, maxWindow)
	// A fast peer: 50 MiB/s. The window grows by one a block up to rate ×
	// queueTime / block = 100, capped at maxWindow.
	for range 100 {
		clock = clock.Add(20 * time.Millisecond)
		w.delivered(block, clock)
	}
	if w.size != maxWindow {
		t.Fatalf("fast peer window %d, want %d", w.size, maxWindow)
	}
	// It slows to 1 MiB/s: the window shrinks to about 2 s worth.
	for range 30 {
		clock = clock.Add(time.Second)
		w.delivered(block, clock)
	}
	if w.size < 2 || w.size > 4 {
		t.Fatalf("slow peer window %d, want ~3", w.size)
	}
	// A timeout halves it, not below the minimum.
	w.size = 10
	w.timedOut()
	if w.size != 5 {
		t.Fatalf("after timeout %d, want 5", w.size)
	}
	for range 10 {
		w.timedOut()
	}
	if w.size != minWindow {
		t.Fatalf("window fell to %d, below the minimum %d", w.size, minWindow)
	}
}

func TestWindowTimeout(t *testing.T) {
	w := newWindow(2, 32)
	if got := w.timeout(1<<20, 2*time.Second); got != 8*time.Second {
		t.Fatalf("timeout before any measurement %v, want 4x the floor", got)
	}
	w.rate, w.size = 1<<20, 4 // 1 MiB/s, 4 MiB ahead: expect 4 s, allow 12 s
	if got := w.timeout(1<<20, 2*time.Second); got != 12*time.Second {
		t.Fatalf("timeout %v, want 12s", got)
	}
	w.rate = 1 << 30 // very fast: the floor applies
	if got := w.timeout(1<<20, 2*time.Second); got != 2*time.Second {
		t.Fatalf("timeout %v, want the 2s floor", got)
	}
}

// TestWindowExpect: how long a request should take is the pipeline ahead
// of it at the measured rate; the endgame duplicates only late requests.
func TestWindowExpect(t *testing.T) {
	w := newWindow(4, 32)
	if got := w.expect(3, 1<<20, 2*time.Second); got != 4*time.Second {
		t.Fatalf("expect before any measurement %v, want 2x the floor", got)
	}
	w.rate = 512 << 10 // 0.5 MiB/s: 3 leaves of 1 MiB ahead take 6 s
	if got := w.expect(3, 1<<20, 2*time.Second); got != 6*time.Second {
		t.Fatalf("expect %v, want 6s", got)
	}
}
