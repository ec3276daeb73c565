package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

// AddOptions configure Add.
type AddOptions struct {
	chunker.Options
	// Copy keeps the leaves in the repo instead of indexing them in place.
	Copy bool
	// OnlyHash computes the root CID and stores nothing.
	OnlyHash bool
	// Progress, if set, is called with the content bytes hashed so far.
	Progress func(bytes int64) `json:"-"`
}

// ErrBadOptions wraps an invalid chunking option.
var ErrBadOptions = errors.New("bad option")

// AddResult describes one added root.
type AddResult struct {
	CID  cid.Cid `json:"cid"`
	Name string  `json:"name"`
	Size int64   `json:"size"`
}

// Add indexes the file or folder at path: the DAG's internal nodes go into
// the repo, each leaf is recorded as (file, offset, length) unless Copy is
// set. The root is listed only once everything else is written.
func (r *Repo) Add(ctx context.Context, path string, opts AddOptions) (AddResult, error) {
	if err := opts.Validate(); err != nil {
		return AddResult{}, fmt.Errorf("%w: %v", ErrBadOptions, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return AddResult{}, err
	}
	if opts.OnlyHash {
		return HashPath(ctx, abs, opts)
	}
	b, err := r.index.newBatch(ctx)
	if err != nil {
		return AddResult{}, err
	}
	s := &indexSink{b: b, copy: opts.Copy, ids: map[string]string{}, opened: map[string]openedFile{}}
	res, err := chunker.AddPath(ctx, abs, opts.Options, progressSink{s, opts.Progress, new(atomic.Int64)})
	if err != nil {
		return AddResult{}, err
	}
	for _, id := range s.files {
		if err := b.put(rootFileKey(res.CID, id), nil); err != nil {
			return AddResult{}, err
		}
	}
	if err := b.flush(); err != nil {
		return AddResult{}, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return AddResult{}, err
	}
	rec := rootRecord{
		Name: filepath.Base(abs), Size: uint64(res.Size), Dir: st.IsDir(), Path: abs,
		State: StateComplete, Added: time.Now().UTC(), Copy: opts.Copy,
	}
	if err := r.index.putRoot(ctx, res.CID, rec); err != nil {
		return AddResult{}, err
	}
	return AddResult{res.CID, rec.Name, res.Size}, nil
}

// HashPath computes the root CID of path without storing anything
// (--only-hash); it needs no repo.
func HashPath(ctx context.Context, path string, opts AddOptions) (AddResult, error) {
	if err := opts.Validate(); err != nil {
		return AddResult{}, fmt.Errorf("%w: %v", ErrBadOptions, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return AddResult{}, err
	}
	res, err := chunker.AddPath(ctx, abs, opts.Options, progressSink{chunker.Discard, opts.Progress, new(atomic.Int64)})
	return AddResult{res.CID, filepath.Base(abs), res.Size}, err
}

// indexSink records a build in the repo's index.
type indexSink struct {
	b      *batch
	copy   bool
	ids    map[string]string     // path -> file ID
	opened map[string]openedFile // path -> as opened, until File
	files  []string
}

func (s *indexSink) fileID(path string) string {
	id, ok := s.ids[path]
	if !ok {
		id = newFileID()
		s.ids[path] = id
		s.files = append(s.files, id)
	}
	return id
}

func (s *indexSink) Leaf(path string, off int64, c cid.Cid, data []byte) error {
	if s.copy {
		return s.b.put(blockKey(c), append([]byte(nil), data...))
	}
	return s.b.putLoc(c, s.fileID(path), uint64(off), uint64(len(data)))
}

func (s *indexSink) Node(c cid.Cid, data []byte) error {
	return s.b.put(blockKey(c), append([]byte(nil), data...))
}

// Opened keeps the identity of a file as opened, before its bytes are
// hashed: the identity its leaves are verified under.
func (s *indexSink) Opened(path string, fi os.FileInfo) error {
	s.opened[path] = openedFile{fi, time.Now().UnixNano()}
	return nil
}

func (s *indexSink) File(path string, root cid.Cid, size int64) error {
	if s.copy {
		return nil
	}
	o, ok := s.opened[path]
	delete(s.opened, path)
	if !ok {
		return fmt.Errorf("adding %s: the file was not opened as a file", path)
	}
	f := fileRecordOf(path, o.fi, root)
	if f.Size == size { // else it changed while hashed: leaves are hashed when served
		f.VerifiedNs = o.at
	}
	f.Size = size // what was hashed
	return s.b.putJSON(fileKey(s.fileID(path)), f)
}

// openedFile is a file's FileInfo as opened and the wall time it was
// taken (Unix ns).
type openedFile struct {
	fi os.FileInfo
	at int64
}

// progressSink reports bytes hashed as leaves pass through.
type progressSink struct {
	chunker.Sink
	fn    func(int64)
	total *atomic.Int64
}

func (p progressSink) Leaf(path string, off int64, c cid.Cid, data []byte) error {
	if p.fn != nil {
		p.fn(p.total.Add(int64(len(data))))
	}
	return p.Sink.Leaf(path, off, c, data)
}

// Opened passes the file's identity on to the sink if it wants it.
func (p progressSink) Opened(path string, fi os.FileInfo) error {
	if o, ok := p.Sink.(chunker.Opener); ok {
		return o.Opened(path, fi)
	}
	return nil
}
