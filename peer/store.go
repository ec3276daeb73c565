package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/multiformats/go-multicodec"

	"github.com/p2pshare/p2pshare/chunker"
)

// ErrBlockNotFound is returned by Store.Get for a block this node cannot serve.
var ErrBlockNotFound = errors.New("block not found")

// Store adapts the repo's index to transfer.BlockStore and
// transfer.Manifests. Leaves are read from the files they lie in, with
// the file's identity (fstat on the open file) taken before and after each
// read; a leaf is re-hashed unless that identity is the one under which it
// was verified (by add for the whole file, or by an earlier read: see
// leafTrust), so a file changed after add is never served as valid. (A
// download in progress is its session's BlockStore of its own: see
// download.)
type Store struct {
	ix    *index
	trust leafTrust

	mu        sync.Mutex
	manifests map[cid.Cid][]cid.Cid
}

func newStore(ix *index) *Store {
	return &Store{ix: ix, manifests: map[cid.Cid][]cid.Cid{}, trust: leafTrust{files: map[string]*trustedFile{}}}
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
	before, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading leaf %s: %w", c, err)
	}
	at := time.Now().UnixNano()
	data := leafBuf(l.Size)
	if _, err := fh.ReadAt(data, int64(l.Offset)); err != nil && !(errors.Is(err, io.EOF) && l.Size == 0) {
		s.Release(data)
		return nil, fmt.Errorf("reading leaf %s from %s: %w", c, f.Path, err)
	}
	after, err := fh.Stat()
	if err != nil {
		s.Release(data)
		return nil, fmt.Errorf("reading leaf %s: %w", c, err)
	}
	// Unchanged during the read, and the identity its bytes were verified
	// under: the bytes read are those verified.
	id := identityOf(before)
	stable := id == identityOf(after)
	if stable && (f.verifiedAs(id) || s.trust.has(l.FileID, l.Offset, id)) {
		s.trust.skipped.Add(1)
		return data, nil
	}
	if err := chunker.Verify(c, data); err != nil {
		s.Release(data)
		return nil, fmt.Errorf("leaf %s in %s at %d (file changed since add?): %w", c, f.Path, l.Offset, err)
	}
	if stable && id.settled(at) {
		s.trust.add(l.FileID, l.Offset, id)
	}
	return data, nil
}

// leafBufs holds leaf buffers of chunker.MaxChunkSize bytes for reuse: a
// seed reads one per leaf it serves, and fresh ones cost their zeroing
// and the collector's work. A buffer is in the pool only between a
// Release and the next leafBuf.
var leafBufs sync.Pool

// leafBuf returns a buffer of n bytes, from leafBufs if it fits one.
func leafBuf(n uint64) []byte {
	if n > chunker.MaxChunkSize {
		return make([]byte, n)
	}
	if b, ok := leafBufs.Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, chunker.MaxChunkSize)
}

// Release takes back the data of a block Get returned, for reuse by a
// later Get (transfer.BlockReleaser): the caller must not touch it after.
// Callers that keep the data (Bitswap, the gateway, CAR export) never
// call it; their buffers are left to the collector.
func (s *Store) Release(data []byte) {
	if cap(data) == chunker.MaxChunkSize {
		data = data[:0]
		leafBufs.Put(&data)
	}
}

// leafTrust remembers, per file, the leaves this process has verified
// while the file had one identity: read again under that identity, they
// need no new hash. (A file add verified as a whole needs no entry: its
// record says so.) A new identity forgets the old one's leaves.
type leafTrust struct {
	mu    sync.Mutex
	files map[string]*trustedFile // file ID ->
	// skipped counts leaves served without a new hash.
	skipped atomic.Int64
}

// trustedFile is the verified leaves (by offset) of one file identity.
type trustedFile struct {
	id      identity
	offsets map[uint64]bool
}

// maxTrustedFiles bounds leafTrust: past it, it starts afresh (the cost
// is one more hash per leaf).
const maxTrustedFiles = 4096

func (t *leafTrust) has(file string, off uint64, id identity) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[file]
	return f != nil && f.id == id && f.offsets[off]
}

func (t *leafTrust) add(file string, off uint64, id identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.files[file]
	if f == nil || f.id != id {
		if len(t.files) >= maxTrustedFiles {
			clear(t.files)
		}
		f = &trustedFile{id: id, offsets: map[uint64]bool{}}
		t.files[file] = f
	}
	f.offsets[off] = true
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
	if isRaw(root) {
		// A raw root is its one leaf: nothing to read (and hash) to say
		// so, which a seed does for every remote's HELLO.
		if ok, err := s.Has(ctx, root); err != nil || !ok {
			return nil, fmt.Errorf("root %s: %w", root, ErrBlockNotFound)
		}
		return []cid.Cid{root}, nil
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
	}, chunker.Verified())
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

// localGet reads a block from this repo only (never the network), verified
// as Get does.
func (s *Store) localGet(ctx context.Context, c cid.Cid) ([]byte, error) { return s.Get(ctx, c) }
