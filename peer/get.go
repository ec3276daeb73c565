package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/transfer"
)

// Errors of Get that callers branch on.
var (
	// ErrNoProviders means no peer holding the content was found in time.
	ErrNoProviders = errors.New("no providers found")
	// ErrStalled means providers were found but no data arrived in time.
	ErrStalled = errors.New("download stalled")
	// ErrUnreachable means peers holding the content were found but none
	// could be connected to, directly or through a relay: typically peers
	// behind NAT that hold no relay reservation.
	ErrUnreachable = errors.New("no path to the peers holding the content")
	// ErrExists means the output path holds different content.
	ErrExists = errors.New("output path exists")
)

// DefaultGetTimeout bounds how long Get waits for providers, and for any
// progress once it has them.
const DefaultGetTimeout = 60 * time.Second

// GetOptions configure Get.
type GetOptions struct {
	// Path, if set, names a file or folder inside root ("sub/dir/file",
	// as in /ipfs/ROOT/sub/dir/file): only that part is fetched (see Get).
	Path string `json:"path,omitempty"`
	// Out is the output path; empty means Path's last element, else the
	// root CID, in the current folder.
	Out string
	// Force replaces an existing file at Out.
	Force bool
	// Timeout is how long to wait for providers, and for progress; 0 means
	// DefaultGetTimeout.
	Timeout time.Duration
	// Progress, if set, is called about every Interval while downloading,
	// and once at the end; calls never overlap.
	Progress func(GetProgress) `json:"-"`
	// Interval between Progress calls; 0 means 250 ms.
	Interval time.Duration
	// Peers are peers known to hold root (a ticket's): the download dials
	// them first, then the providers the DHT finds.
	Peers []libp2ppeer.AddrInfo `json:"peers,omitempty"`
}

// GetProgress is a snapshot of a download.
type GetProgress struct {
	BytesDone  uint64 `json:"bytes_done"`
	BytesTotal uint64 `json:"bytes_total"`
	Peers      int    `json:"peers"`
}

// GetResult describes a finished download.
type GetResult struct {
	CID     string            `json:"cid"`
	Path    string            `json:"path"`
	Bytes   uint64            `json:"bytes"`
	Seconds float64           `json:"seconds"`
	From    map[string]uint64 `json:"from"`
	Wasted  uint64            `json:"wasted"` // bytes received twice or after a cancel
	// WastedFrom is Wasted by peer ID (peers that wasted none are left out).
	WastedFrom map[string]uint64 `json:"wasted_from,omitempty"`
	// RelayedFrom is the part of From, by peer ID, that came through a
	// circuit relay rather than over a direct connection (peers that
	// relayed none are left out).
	RelayedFrom map[string]uint64 `json:"relayed_from,omitempty"`
}

// Get fetches root from the network into opts.Out, verifying every block,
// and records it in the repo so that it is served while and after it
// downloads. The output appears under its final name only once complete; an
// interrupted Get resumes where it stopped.
//
// With opts.Path, Get first resolves the path from root, fetching only the
// folders on the way (see chunker.Resolve), then downloads what it names
// as a root of its own (recorded in the repo under that CID): only the
// blocks on the path and under its target cross the network. A path
// element that is not a safe name is an error wrapping ErrBadOptions; one
// that names nothing, an error wrapping chunker.ErrNoSuchEntry.
func (n *Node) Get(ctx context.Context, root cid.Cid, opts GetOptions) (GetResult, error) {
	n.log.Info("download started", "root", root, "path", opts.Path)
	res, err := n.get(ctx, root, opts)
	if err != nil {
		// Info, not warn: the caller reports the error itself.
		n.log.Info("download failed", "root", root, "path", opts.Path, "err", err)
		return res, err
	}
	n.log.Info("download finished", "root", root, "path", opts.Path, "cid", res.CID, "bytes", res.Bytes,
		"seconds", res.Seconds, "peers", len(res.From))
	return res, nil
}

// get is Get without its log lines.
func (n *Node) get(ctx context.Context, root cid.Cid, opts GetOptions) (GetResult, error) {
	start := time.Now()
	if err := chunker.CheckCID(root); err != nil {
		return GetResult{}, err
	}
	elems, err := chunker.SplitPath(opts.Path)
	if err != nil {
		return GetResult{}, fmt.Errorf("%w: path %q: %w", ErrBadOptions, opts.Path, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultGetTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	var prov transfer.Providers = n.DHT
	if len(elems) > 0 {
		prov = alsoRoot{root: root, next: prov}
	}
	if len(opts.Peers) > 0 {
		prov = hinted{peers: opts.Peers, next: prov}
	}
	// What is downloaded: root, or what the path names in it.
	target := root
	from := map[string]uint64{}
	var wasted uint64
	if len(elems) > 0 {
		var stats map[libp2ppeer.ID]transfer.PeerStats
		target, stats, err = n.resolve(ctx, root, elems, prov, opts.Timeout)
		for p, s := range stats {
			if s.Bytes > 0 {
				from[p.String()] += s.Bytes
			}
			wasted += s.Wasted
		}
		if err != nil {
			return GetResult{}, err
		}
	}
	out := opts.Out
	if out == "" {
		out = defaultOut(root, elems)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return GetResult{}, err
	}
	if done, err := n.alreadyThere(ctx, target, out, opts.Force); err != nil || done {
		if err == nil {
			err = n.adoptFinished(ctx, target, out)
		}
		if err != nil {
			return GetResult{}, err
		}
		return GetResult{CID: target.String(), Path: out, Seconds: time.Since(start).Seconds(), From: from, Wasted: wasted}, nil
	}

	// The watchdog cancels the download when nothing has moved for Timeout.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var moved atomic.Int64
	moved.Store(time.Now().UnixNano())
	var gotData atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	wdDone := make(chan struct{})
	defer close(wdDone)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wdDone:
				return
			case <-t.C:
				if time.Since(time.Unix(0, moved.Load())) > opts.Timeout {
					if gotData.Load() {
						cancel(fmt.Errorf("no data for %s: %w", opts.Timeout, ErrStalled))
					} else {
						cancel(fmt.Errorf("%w for %s", ErrNoProviders, root))
					}
					return
				}
			}
		}
	}()
	touch := func() { moved.Store(time.Now().UnixNano()) }

	d, err := openDownload(n.Repo.store(), target, out)
	if err != nil {
		return GetResult{}, err
	}
	defer d.Close()
	d.busy = touch
	// A sub-root's session names the sub-root in HELLO (seeds of root
	// answer for any folder or file whose structure they hold, see
	// Store.Leaves) and finds peers through root's providers (alsoRoot).
	sess := n.Transfer.NewSession(target, prov, transfer.WithStore(d))
	defer sess.Close()
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if data, err := d.Get(ctx, c); err == nil {
			return data, nil
		}
		data, err := sess.Block(ctx, c)
		if err == nil {
			d.holdRoot(c, data) // Block's data is ours
			if !gotData.Swap(true) {
				Step(n.log, "first block")
			}
			touch()
		}
		return data, err
	}
	// The whole structure first: nothing is written before the DAG is
	// known to be well-formed and to fit.
	if _, err := d.Stat(ctx, get); err != nil {
		return GetResult{}, getError(ctx, err, sess)
	}
	Step(n.log, "structure fetched")
	if err := d.Open(ctx, out); err != nil {
		return GetResult{}, getError(ctx, err, sess)
	}
	Step(n.log, "output opened")
	n.provide(target) // the structure is here: peers may start asking us
	ld := newLiveDownload(target, out, d, sess.Peers)
	defer n.live.add(ld)()

	stopProgress := make(chan struct{})
	var progressWG sync.WaitGroup
	endProgress := sync.OnceFunc(func() { close(stopProgress); progressWG.Wait() })
	defer endProgress()
	progressWG.Add(1)
	go func() {
		defer progressWG.Done()
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		var last uint64
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				b, need := d.progress()
				if b != last {
					if b > last {
						ld.meter.Mark(b - last)
					}
					last = b
					gotData.Store(true)
					touch()
				}
				if opts.Progress != nil {
					opts.Progress(GetProgress{BytesDone: b, BytesTotal: need, Peers: sess.Peers()})
				}
			}
		}
	}()
	if err := sess.Download(ctx, d.leaves()); err != nil {
		return GetResult{}, getError(ctx, err, sess)
	}
	Step(n.log, "leaves fetched")
	size, err := d.Finish(ctx, opts.Force, out)
	if err != nil {
		return GetResult{}, getError(ctx, err, sess)
	}
	Step(n.log, "output synced and recorded")
	endProgress() // the last call must not overlap the ticker's
	if opts.Progress != nil {
		_, need := d.progress()
		opts.Progress(GetProgress{BytesDone: need, BytesTotal: need, Peers: sess.Peers()})
	}
	wastedFrom, relayedFrom := map[string]uint64{}, map[string]uint64{}
	for p, s := range sess.Stats() {
		if s.Bytes > 0 {
			from[p.String()] += s.Bytes
		}
		if s.Relayed > 0 {
			relayedFrom[p.String()] = s.Relayed
		}
		if s.Wasted > 0 {
			wastedFrom[p.String()] = s.Wasted
		}
		wasted += s.Wasted
	}
	return GetResult{CID: target.String(), Path: out, Bytes: size, Seconds: time.Since(start).Seconds(), From: from, Wasted: wasted, WastedFrom: wastedFrom, RelayedFrom: relayedFrom}, nil
}

// defaultOut is where a get of elems inside root goes when no output is
// given: the last element (a safe name: SplitPath checked it), else the
// root CID, in the current folder.
func defaultOut(root cid.Cid, elems []string) string {
	if len(elems) > 0 {
		return elems[len(elems)-1]
	}
	return root.String()
}

// resolve follows elems from root and returns the CID they name, and what
// each peer sent for it. The folders on the way come from the repo if it
// holds them, else through a session for root (what peers hold, announce
// and answer HELLO for); each must arrive within timeout.
func (n *Node) resolve(ctx context.Context, root cid.Cid, elems []string, prov transfer.Providers, timeout time.Duration) (cid.Cid, map[libp2ppeer.ID]transfer.PeerStats, error) {
	st := n.Repo.store()
	var sess *transfer.Session
	defer func() {
		if sess != nil {
			sess.Close()
		}
	}()
	gotData := false
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if data, err := st.Get(ctx, c); err == nil {
			return data, nil
		}
		if sess == nil {
			sess = n.Transfer.NewSession(root, prov)
		}
		bctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		data, err := sess.Block(bctx, c)
		switch {
		case err == nil:
			gotData = true
			return data, nil
		case ctx.Err() == nil && bctx.Err() != nil && gotData:
			return nil, fmt.Errorf("no data for %s: %w", timeout, ErrStalled)
		case ctx.Err() == nil && bctx.Err() != nil:
			return nil, unreachable(fmt.Errorf("%w for %s", ErrNoProviders, root), sess)
		}
		return nil, err
	}
	target, err := chunker.Resolve(ctx, root, elems, get)
	var stats map[libp2ppeer.ID]transfer.PeerStats
	if sess != nil {
		stats = sess.Stats()
	}
	if errors.Is(err, chunker.ErrNoSuchEntry) {
		return cid.Undef, stats, fmt.Errorf("%w in %s: %q", chunker.ErrNoSuchEntry, root, strings.Join(elems, "/"))
	}
	return target, stats, err
}

// alsoRoot finds the peers for a download of something inside root (a
// sub-root): root's providers, who hold it whole, and the sub-root's own
// (peers that fetched just that part).
type alsoRoot struct {
	root cid.Cid
	next transfer.Providers
}

// FindProviders merges next's results for root and for c; the channel
// closes when both searches end or ctx does.
func (a alsoRoot) FindProviders(ctx context.Context, c cid.Cid) <-chan libp2ppeer.AddrInfo {
	if c.Equals(a.root) {
		return a.next.FindProviders(ctx, c)
	}
	out := make(chan libp2ppeer.AddrInfo)
	var wg sync.WaitGroup
	for _, q := range []cid.Cid{a.root, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ai := range a.next.FindProviders(ctx, q) {
				select {
				case out <- ai:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// getError prefers the watchdog's reason over the context error it caused.
func getError(ctx context.Context, err error, sess *transfer.Session) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return unreachable(cause, sess)
	}
	if errors.Is(err, transfer.ErrNoPeers) {
		return unreachable(fmt.Errorf("%w: %v", ErrNoProviders, err), sess)
	}
	return err
}

// unreachable turns a download that found no provider into what it was
// when providers were found but none could be connected to: peers behind
// NAT with no relay to reach them through, and no direct path.
func unreachable(err error, sess *transfer.Session) error {
	if sess == nil || !errors.Is(err, ErrNoProviders) {
		return err
	}
	n, _ := sess.Unreached()
	if n == 0 {
		return err
	}
	holders := "1 peer holds"
	if n != 1 {
		holders = fmt.Sprintf("%d peers hold", n)
	}
	return fmt.Errorf("%w: %s it but none could be reached, directly or through a relay: "+
		"offline, or behind NAT with no relay reservation (a publicly reachable seed relays for them unless run with --no-relay)", ErrUnreachable, holders)
}

// adoptFinished records as complete a result that is in place under out
// while the repo still has it as a partial download there: a get killed
// between moving it into place and recording it.
func (n *Node) adoptFinished(ctx context.Context, root cid.Cid, out string) error {
	rec, err := n.Repo.index.root(ctx, root)
	if err != nil || rec.State != StatePartial || rec.Temp != tempPath(out) {
		return nil
	}
	if n.isSymlinkRoot(ctx, root, out) {
		// Nothing to index (and Add would follow the link).
		return n.Repo.index.putRoot(ctx, root, rootRecord{Name: filepath.Base(out), Path: out, State: StateComplete, Added: time.Now().UTC()})
	}
	if err := n.Repo.Remove(ctx, root); err != nil {
		return err
	}
	_, err = n.Repo.Add(ctx, out, AddOptions{Options: chunker.Options{Hidden: true}})
	return err
}

// alreadyThere reports whether out already holds root. A different file
// there is an error unless force is set.
func (n *Node) alreadyThere(ctx context.Context, root cid.Cid, out string, force bool) (bool, error) {
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// A symlink is compared as one, never followed: a DAG whose root
		// is a link to / would have the next get hash the whole disk.
		if n.isSymlinkRoot(ctx, root, out) {
			return true, nil
		}
	} else if res, err := chunker.AddPath(ctx, out, chunker.Options{Hidden: true}, chunker.Discard); err == nil && res.CID.Equals(root) {
		return true, nil
	}
	if force {
		return false, nil
	}
	return false, fmt.Errorf("%s holds other content (use --force to replace it): %w", out, ErrExists)
}

// isSymlinkRoot reports whether root is a symlink node, held in the repo,
// whose target is the one of the symlink at out.
func (n *Node) isSymlinkRoot(ctx context.Context, root cid.Cid, out string) bool {
	data, err := n.Repo.store().localGet(ctx, root)
	if err != nil {
		return false
	}
	nd, err := chunker.Decode(root, data)
	if err != nil || nd.Kind != chunker.KindSymlink {
		return false
	}
	target, err := os.Readlink(out)
	return err == nil && target == string(nd.Data)
}
