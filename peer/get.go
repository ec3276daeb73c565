package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore/query"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/transfer"
)

// Errors of Get that callers branch on.
var (
	// ErrNoProviders means no peer holding the content was found in time.
	ErrNoProviders = errors.New("no providers found")
	// ErrStalled means providers were found but no data arrived in time.
	ErrStalled = errors.New("download stalled")
	// ErrExists means the output path holds different content.
	ErrExists = errors.New("output path exists")
)

// DefaultGetTimeout bounds how long Get waits for providers, and for any
// progress once it has them.
const DefaultGetTimeout = 60 * time.Second

// GetOptions configure Get.
type GetOptions struct {
	// Out is the output path; empty means the root CID in the current folder.
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
}

// Get fetches root from the network into opts.Out, verifying every block,
// and records it in the repo so that it is served while and after it
// downloads. The output appears under its final name only once complete; an
// interrupted Get resumes where it stopped.
func (n *Node) Get(ctx context.Context, root cid.Cid, opts GetOptions) (GetResult, error) {
	start := time.Now()
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultGetTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	out := opts.Out
	if out == "" {
		out = root.String()
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return GetResult{}, err
	}
	if done, err := n.alreadyThere(ctx, root, out, opts.Force); err != nil || done {
		if err != nil {
			return GetResult{}, err
		}
		return GetResult{CID: root.String(), Path: out, Seconds: time.Since(start).Seconds(), From: map[string]uint64{}}, nil
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

	sess := n.Transfer.NewSession(root, n.DHT)
	defer sess.Close()
	st := n.Repo.store()
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if data, err := st.Get(ctx, c); err == nil {
			return data, nil
		}
		data, err := sess.Block(ctx, c)
		if err == nil {
			gotData.Store(true)
			touch()
		}
		return data, err
	}
	var entries []chunker.Entry
	err = chunker.Walk(ctx, root, get, func(e chunker.Entry) error {
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return GetResult{}, getError(ctx, err)
	}

	d, total, err := n.prepare(ctx, root, out, entries)
	if err != nil {
		return GetResult{}, err
	}
	defer d.closeFiles()
	st.addDownload(d)
	defer st.removeDownload(d)
	n.provide(root) // the structure is here: peers may start asking us

	var uniq []cid.Cid
	seen := map[cid.Cid]bool{}
	for _, e := range entries {
		for _, l := range e.Leaves {
			if !seen[l.CID] {
				seen[l.CID] = true
				uniq = append(uniq, l.CID)
			}
		}
	}
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
				d.mu.Lock()
				b := d.bytes
				d.mu.Unlock()
				if b != last {
					last = b
					gotData.Store(true)
					touch()
				}
				if opts.Progress != nil {
					opts.Progress(GetProgress{BytesDone: b, BytesTotal: total, Peers: sess.Peers()})
				}
			}
		}
	}()
	if err := sess.Download(ctx, uniq); err != nil {
		return GetResult{}, getError(ctx, err)
	}
	if err := n.finish(ctx, root, out, opts.Force, d, entries); err != nil {
		return GetResult{}, err
	}
	endProgress() // the last call must not overlap the ticker's
	if opts.Progress != nil {
		opts.Progress(GetProgress{BytesDone: total, BytesTotal: total, Peers: sess.Peers()})
	}
	from := map[string]uint64{}
	var wasted uint64
	for p, s := range sess.Stats() {
		if s.Bytes > 0 {
			from[p.String()] = s.Bytes
		}
		wasted += s.Wasted
	}
	return GetResult{CID: root.String(), Path: out, Bytes: total, Seconds: time.Since(start).Seconds(), From: from, Wasted: wasted}, nil
}

// getError prefers the watchdog's reason over the context error it caused.
func getError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if errors.Is(err, transfer.ErrNoPeers) {
		return fmt.Errorf("%w: %v", ErrNoProviders, err)
	}
	return err
}

// alreadyThere reports whether out already holds root. A different file
// there is an error unless force is set.
func (n *Node) alreadyThere(ctx context.Context, root cid.Cid, out string, force bool) (bool, error) {
	if _, err := os.Lstat(out); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	res, err := chunker.AddPath(ctx, out, chunker.Options{Hidden: true}, chunker.Discard)
	if err == nil && res.CID.Equals(root) {
		return true, nil
	}
	if force {
		return false, nil
	}
	return false, fmt.Errorf("%s holds other content (use --force to replace it): %w", out, ErrExists)
}

// tempPath is where a download lies until it is complete.
func tempPath(out string) string {
	return filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".p2pshare-part")
}

// prepare creates the download's temporary files (or reopens them, to
// resume), records the root as partial and works out which leaves are
// already in place.
func (n *Node) prepare(ctx context.Context, root cid.Cid, out string, entries []chunker.Entry) (*download, uint64, error) {
	ix := n.Repo.index
	tmp := tempPath(out)
	isDir := len(entries) > 0 && entries[0].Kind == chunker.KindDirectory
	prev, err := ix.root(ctx, root)
	resume := err == nil && prev.State == StatePartial && prev.Temp == tmp
	known := map[string]string{} // temp path -> file ID
	if resume {
		files, err := ix.rootFiles(ctx, root)
		if err != nil {
			return nil, 0, err
		}
		for id, f := range files {
			known[f.Path] = id
		}
	}
	if !resume {
		if err := os.RemoveAll(tmp); err != nil {
			return nil, 0, err
		}
	}
	if err := ix.putRoot(ctx, root, rootRecord{Name: filepath.Base(out), Dir: isDir, Path: out, Temp: tmp, State: StatePartial, Added: time.Now().UTC()}); err != nil {
		return nil, 0, err
	}

	d := &download{root: root, where: map[cid.Cid][]position{}, done: map[cid.Cid]bool{}}
	b, err := ix.newBatch(ctx)
	if err != nil {
		return nil, 0, err
	}
	var total uint64
	for _, e := range entries {
		p := tmp
		if e.Path != "" {
			p = filepath.Join(tmp, filepath.FromSlash(e.Path))
		}
		switch e.Kind {
		case chunker.KindDirectory:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, 0, fmt.Errorf("creating folder: %w", err)
			}
			continue
		case chunker.KindSymlink:
			continue // made by finish
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, 0, fmt.Errorf("creating folder: %w", err)
		}
		id, ok := known[p]
		if _, statErr := os.Stat(p); ok && statErr != nil {
			// The partial file vanished: forget what we had of it.
			if err := ix.deleteFile(ctx, b, root, id); err != nil {
				return nil, 0, err
			}
			ok = false
		}
		if !ok {
			id = newFileID()
			if err := b.put(rootFileKey(root, id), nil); err != nil {
				return nil, 0, err
			}
		}
		if err := b.putJSON(fileKey(id), fileRecord{Path: p, Size: int64(e.Size), Root: root.String()}); err != nil {
			return nil, 0, err
		}
		fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, 0, fmt.Errorf("creating output: %w", err)
		}
		f := &outFile{id: id, path: p, fh: fh}
		d.files = append(d.files, f)
		if err := fh.Truncate(int64(e.Size)); err != nil {
			return nil, 0, fmt.Errorf("sizing output (disk full?): %w", err)
		}
		total += e.Size
		for _, l := range e.Leaves {
			d.where[l.CID] = append(d.where[l.CID], position{file: f, offset: l.Offset, size: l.Size})
		}
	}
	if err := b.flush(); err != nil {
		return nil, 0, err
	}
	// Leaves verified by an earlier run are in place already.
	have := map[string]bool{} // fileID/offset
	for _, f := range d.files {
		offs, err := ix.fileOffsets(ctx, f.id)
		if err != nil {
			return nil, 0, err
		}
		for _, o := range offs {
			have[f.id+"/"+strconv.FormatUint(o, 10)] = true
		}
	}
	var fill []cid.Cid
	for c, ps := range d.where {
		all := true
		for _, p := range ps {
			if !have[p.file.id+"/"+strconv.FormatUint(p.offset, 10)] {
				all = false
			}
		}
		if all {
			d.done[c] = true
			d.bytes += ps[0].size * uint64(len(ps))
		} else {
			fill = append(fill, c)
		}
	}
	// Leaves this repo holds elsewhere are copied, not fetched.
	st := n.Repo.store()
	for _, c := range fill {
		if data, err := st.Get(ctx, c); err == nil {
			if err := d.write(ctx, ix, c, data); err != nil {
				return nil, 0, err
			}
		}
	}
	return d, total, nil
}

// fileOffsets lists the offsets of the verified leaves recorded for a file.
func (ix *index) fileOffsets(ctx context.Context, id string) ([]uint64, error) {
	prefix := "/floc/" + id + "/"
	res, err := ix.ds.Query(ctx, query.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []uint64
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		if o, err := strconv.ParseUint(strings.TrimPrefix(e.Key, prefix), 10, 64); err == nil {
			out = append(out, o)
		}
	}
	return out, nil
}

// finish checks that every leaf is in place, makes symlinks, flushes the
// files to disk and moves the result to its final name.
func (n *Node) finish(ctx context.Context, root cid.Cid, out string, force bool, d *download, entries []chunker.Entry) error {
	d.mu.Lock()
	for c := range d.where {
		if !d.done[c] {
			d.mu.Unlock()
			return fmt.Errorf("bug: download of %s ended with leaf %s missing", root, c)
		}
	}
	d.mu.Unlock()
	tmp := tempPath(out)
	for _, e := range entries {
		if e.Kind == chunker.KindSymlink {
			p := tmp
			if e.Path != "" {
				p = filepath.Join(tmp, filepath.FromSlash(e.Path))
			}
			os.Remove(p)
			if err := os.Symlink(e.Target, p); err != nil {
				return fmt.Errorf("creating symlink: %w", err)
			}
		}
	}
	for _, f := range d.files {
		if err := f.fh.Sync(); err != nil {
			return fmt.Errorf("flushing %s: %w", f.path, err)
		}
	}
	d.closeFiles()
	if force {
		if err := os.RemoveAll(out); err != nil {
			return fmt.Errorf("replacing %s: %w", out, err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("moving download into place: %w", err)
	}
	ix := n.Repo.index
	b, err := ix.newBatch(ctx)
	if err != nil {
		return err
	}
	var size uint64
	for _, f := range d.files {
		final := out + strings.TrimPrefix(f.path, tmp)
		st, err := os.Stat(final)
		if err != nil {
			return err
		}
		size += uint64(st.Size())
		if err := b.putJSON(fileKey(f.id), fileRecord{Path: final, Size: st.Size(), MTimeNs: st.ModTime().UnixNano(), Root: root.String()}); err != nil {
			return err
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	isDir := len(entries) > 0 && entries[0].Kind == chunker.KindDirectory
	return ix.putRoot(ctx, root, rootRecord{Name: filepath.Base(out), Size: size, Dir: isDir, Path: out, State: StateComplete, Added: time.Now().UTC()})
}
