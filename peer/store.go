package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/multiformats/go-multicodec"

	"github.com/p2pshare/p2pshare/chunker"
)

// ErrBlockNotFound is returned by Store.Get for a block this node cannot serve.
var ErrBlockNotFound = errors.New("block not found")

// Store adapts the repo's index to transfer.BlockStore and
// transfer.Manifests. Leaves are read from the files they lie in and
// re-hashed on every read, so a file changed after add is never served as
// valid. Leaves that arrive for a download in progress are written straight
// into the download's files.
type Store struct {
	ix *index

	mu        sync.Mutex
	downloads map[*download]struct{}
	manifests map[cid.Cid][]cid.Cid
}

func newStore(ix *index) *Store {
	return &Store{ix: ix, downloads: map[*download]struct{}{}, manifests: map[cid.Cid][]cid.Cid{}}
}

func isRaw(c cid.Cid) bool { return c.Prefix().Codec == uint64(multicodec.Raw) }

// Has reports whether the block can be served, or, for a leaf a download in
// progress wants, whether the download already holds it everywhere it goes.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	s.mu.Lock()
	for d := range s.downloads {
		if d.wants(c) {
			s.mu.Unlock()
			return false, nil
		}
	}
	s.mu.Unlock()
	if ok, err := s.ix.ds.Has(ctx, blockKey(c)); ok || err != nil {
		return ok, err
	}
	if !isRaw(c) {
		return false, nil
	}
	locs, err := s.ix.locations(ctx, c)
	return len(locs) > 0, err
}

// Get returns a verified copy of the block.
func (s *Store) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	data, err := s.ix.ds.Get(ctx, blockKey(c))
	if err == nil {
		if err := chunker.Verify(c, data); err != nil {
			return nil, fmt.Errorf("block %s in repo: %w", c, err)
		}
		return data, nil
	}
	if !errors.Is(err, ds.ErrNotFound) {
		return nil, err
	}
	if !isRaw(c) {
		return nil, fmt.Errorf("%s: %w", c, ErrBlockNotFound)
	}
	locs, err := s.ix.locations(ctx, c)
	if err != nil {
		return nil, err
	}
	var lastErr error = fmt.Errorf("%s: %w", c, ErrBlockNotFound)
	for _, l := range locs {
		data, err := s.readLeaf(ctx, c, l)
		if err == nil {
			return data, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (s *Store) readLeaf(ctx context.Context, c cid.Cid, l location) ([]byte, error) {
	if l.Size > chunker.MaxBlockSize {
		return nil, fmt.Errorf("leaf %s: recorded size %d too large", c, l.Size)
	}
	var f fileRecord
	if err := s.ix.getJSON(ctx, fileKey(l.FileID), &f); err != nil {
		return nil, fmt.Errorf("leaf %s: file record: %w", c, err)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("reading leaf %s: %w", c, err)
	}
	defer fh.Close()
	data := make([]byte, l.Size)
	if _, err := fh.ReadAt(data, int64(l.Offset)); err != nil && !(errors.Is(err, io.EOF) && l.Size == 0) {
		return nil, fmt.Errorf("reading leaf %s from %s: %w", c, f.Path, err)
	}
	if err := chunker.Verify(c, data); err != nil {
		return nil, fmt.Errorf("leaf %s in %s at %d (file changed since add?): %w", c, f.Path, l.Offset, err)
	}
	return data, nil
}

// Put stores a verified block: a leaf wanted by a download in progress is
// written into its files; anything else is kept in the repo.
func (s *Store) Put(ctx context.Context, c cid.Cid, data []byte) error {
	s.mu.Lock()
	var targets []*download
	for d := range s.downloads {
		if d.wants(c) {
			targets = append(targets, d)
		}
	}
	s.mu.Unlock()
	if len(targets) == 0 {
		if ok, _ := s.ix.ds.Has(ctx, blockKey(c)); ok {
			return nil
		}
		if err := s.ix.ds.Put(ctx, blockKey(c), data); err != nil {
			return fmt.Errorf("storing block %s: %w", c, err)
		}
	}
	for _, d := range targets {
		if err := d.write(ctx, s.ix, c, data); err != nil {
			return err
		}
	}
	return nil
}

// Leaves returns the leaf CIDs of a root this node holds the structure of,
// in DAG order.
func (s *Store) Leaves(ctx context.Context, root cid.Cid) ([]cid.Cid, error) {
	s.mu.Lock()
	l, ok := s.manifests[root]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	if _, err := s.ix.root(ctx, root); err != nil {
		return nil, fmt.Errorf("root %s: %w", root, ErrBlockNotFound)
	}
	var leaves []cid.Cid
	err := chunker.Walk(ctx, root, s.localGet, func(e chunker.Entry) error {
		for _, lf := range e.Leaves {
			leaves = append(leaves, lf.CID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.manifests) > 64 {
		clear(s.manifests)
	}
	s.manifests[root] = leaves
	s.mu.Unlock()
	return leaves, nil
}

func (s *Store) forget(root cid.Cid) {
	s.mu.Lock()
	delete(s.manifests, root)
	s.mu.Unlock()
}

// localGet reads a block from this repo only (never the network).
func (s *Store) localGet(ctx context.Context, c cid.Cid) ([]byte, error) { return s.Get(ctx, c) }

func (s *Store) addDownload(d *download) {
	s.mu.Lock()
	s.downloads[d] = struct{}{}
	s.mu.Unlock()
}

func (s *Store) removeDownload(d *download) {
	s.mu.Lock()
	delete(s.downloads, d)
	s.mu.Unlock()
}

// position is one place a leaf goes in a download's output.
type position struct {
	file   *outFile
	offset uint64
	size   uint64
}

type outFile struct {
	id   string
	path string // temporary path while downloading
	fh   *os.File
}

// download is the state of one get in progress: where each leaf goes and
// which leaves are already written.
type download struct {
	root  cid.Cid
	files []*outFile
	mu    sync.Mutex
	where map[cid.Cid][]position
	done  map[cid.Cid]bool
	bytes uint64
}

func (d *download) wants(c cid.Cid) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.where[c]
	return ok && !d.done[c]
}

// write puts a verified leaf at each of its positions and records where it
// now lies, so that it is served from there and a resumed download skips it.
func (d *download) write(ctx context.Context, ix *index, c cid.Cid, data []byte) error {
	d.mu.Lock()
	pos, done := d.where[c], d.done[c]
	d.mu.Unlock()
	if done {
		return nil
	}
	b, err := ix.newBatch(ctx)
	if err != nil {
		return err
	}
	for _, p := range pos {
		if uint64(len(data)) != p.size {
			return fmt.Errorf("leaf %s is %d bytes, the DAG says %d", c, len(data), p.size)
		}
		if _, err := p.file.fh.WriteAt(data, int64(p.offset)); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Base(p.file.path), err)
		}
		startWriteback(p.file.fh, int64(p.offset), int64(p.size))
		if err := b.putLoc(c, p.file.id, p.offset, p.size); err != nil {
			return err
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	d.mu.Lock()
	if !d.done[c] {
		d.done[c] = true
		d.bytes += uint64(len(data)) * uint64(len(pos))
	}
	d.mu.Unlock()
	return nil
}

func (d *download) closeFiles() {
	for _, f := range d.files {
		f.fh.Close()
	}
}
