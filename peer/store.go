package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
// valid. (A download in progress is its session's BlockStore of its own:
// see download.)
type Store struct {
	ix *index

	mu        sync.Mutex
	manifests map[cid.Cid][]cid.Cid
}

func newStore(ix *index) *Store {
	return &Store{ix: ix, manifests: map[cid.Cid][]cid.Cid{}}
}

func isRaw(c cid.Cid) bool { return c.Prefix().Codec == uint64(multicodec.Raw) }

// Has reports whether the block can be served.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
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

// Put keeps a verified block in the repo.
func (s *Store) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if ok, _ := s.ix.ds.Has(ctx, blockKey(c)); ok {
		return nil
	}
	if err := s.ix.ds.Put(ctx, blockKey(c), data); err != nil {
		return fmt.Errorf("storing block %s: %w", c, err)
	}
	return nil
}

// Leaves returns the distinct leaf CIDs of a root this node holds the
// structure of, in order of first appearance. A root need not be one
// recorded in the repo: any file or folder inside one (a sub-root, as a
// selective get fetches it) whose block is here is walked too, from the
// blocks in the repo; that walk costs no more than its recorded root's.
func (s *Store) Leaves(ctx context.Context, root cid.Cid) ([]cid.Cid, error) {
	s.mu.Lock()
	l, ok := s.manifests[root]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	if _, err := s.ix.root(ctx, root); err != nil {
		if ok, err := s.Has(ctx, root); err != nil || !ok {
			return nil, fmt.Errorf("root %s: %w", root, ErrBlockNotFound)
		}
	}
	var leaves []cid.Cid
	err := chunker.Leaves(ctx, root, s.localGet, func(c cid.Cid) error {
		leaves = append(leaves, c)
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
