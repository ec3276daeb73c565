package peer

import (
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	flow "github.com/libp2p/go-flow-metrics"
)

// TransferInfo describes a download running now (see Node.Transfers).
type TransferInfo struct {
	// CID is what is downloaded: the root, or what Path names in it.
	CID string `json:"cid"`
	// Name is the output's file or folder name.
	Name       string    `json:"name"`
	BytesDone  uint64    `json:"bytes_done"`
	BytesTotal uint64    `json:"bytes_total"`
	Peers      int       `json:"peers"`
	Started    time.Time `json:"started"`
	// Rate is the current rate in bytes per second (a moving average over
	// a few seconds, libp2p's go-flow-metrics).
	Rate float64 `json:"rate"`
}

// liveDownloads tracks the downloads a node runs, for Node.Transfers.
type liveDownloads struct {
	mu sync.Mutex
	m  map[*liveDownload]struct{}
}

// liveDownload is one running download. Its progress is read from the
// download and session it follows; its meter is marked by Get's progress
// loop.
type liveDownload struct {
	c       cid.Cid
	name    string
	started time.Time
	meter   *flow.Meter
	d       *download
	peers   func() int
}

// add records a running download until the returned func is called.
func (l *liveDownloads) add(ld *liveDownload) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[*liveDownload]struct{}{}
	}
	l.m[ld] = struct{}{}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.m, ld)
	}
}

// Transfers lists the downloads running now, oldest first, with their
// progress and rates.
func (n *Node) Transfers() []TransferInfo {
	n.live.mu.Lock()
	lds := make([]*liveDownload, 0, len(n.live.m))
	for ld := range n.live.m {
		lds = append(lds, ld)
	}
	n.live.mu.Unlock()
	out := make([]TransferInfo, 0, len(lds))
	for _, ld := range lds {
		done, need := ld.d.progress()
		out = append(out, TransferInfo{
			CID: ld.c.String(), Name: ld.name, BytesDone: done, BytesTotal: need,
			Peers: ld.peers(), Started: ld.started, Rate: ld.meter.Snapshot().Rate,
		})
	}
	slices.SortFunc(out, func(a, b TransferInfo) int { return a.Started.Compare(b.Started) })
	return out
}

// newLiveDownload describes d, a download of c into out.
func newLiveDownload(c cid.Cid, out string, d *download, peers func() int) *liveDownload {
	return &liveDownload{c: c, name: filepath.Base(out), started: time.Now(), meter: flow.NewMeter(), d: d, peers: peers}
}

// Traffic returns the bytes the node sent and received, over all
// protocols, since it started.
func (n *Node) Traffic() (up, down int64) {
	tot := n.bw.GetBandwidthTotals()
	return tot.TotalOut, tot.TotalIn
}
