package peer

import (
	"testing"
	"time"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
)

// Of two nodes that find each other on the LAN at once, one dials at
// once and the other yields, so their dials do not meet in one
// simultaneous-open connection; retries are jittered.
func TestLANWaitOneSideYields(t *testing.T) {
	low, high := libp2ppeer.ID("a"), libp2ppeer.ID("b")
	if w := lanWait(0, low, high); w != 0 {
		t.Errorf("the lesser ID waits %v before its first dial, want 0", w)
	}
	if w := lanWait(0, high, low); w < lanYield || w >= lanYield*3/2 {
		t.Errorf("the greater ID waits %v before its first dial, want [%v, %v)", w, lanYield, lanYield*3/2)
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		w := lanWait(1, low, high)
		if w < lanRetries[1] || w >= lanRetries[1]*3/2 {
			t.Fatalf("retry wait %v, want [%v, %v)", w, lanRetries[1], lanRetries[1]*3/2)
		}
		seen[w] = true
	}
	if len(seen) < 2 {
		t.Error("20 retry waits were all the same: no jitter")
	}
}
