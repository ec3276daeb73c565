package peer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// The index schema. Every key lives in the repo's pebble datastore:
//
//	/root/<cid>                       rootRecord (JSON): a shared root
//	/rootfile/<root>/<fileID>         "": the files that make up a root
//	/file/<fileID>                    fileRecord (JSON): a file on disk
//	/block/<cid>                      bytes: a dag-pb node, or a leaf kept with --copy
//	/loc/<cid>/<fileID>/<offset>      uvarint size: where a raw leaf lies in a file
//	/floc/<fileID>/<offset>           cid bytes: the reverse of /loc, for rm
//
// A root record is written last, in its own synced write, so a crash during
// add or get never shows a half-written root as complete.

// Root states as shown by ls.
const (
	StateComplete = "complete"
	StatePartial  = "partial"
	StateMissing  = "missing"
	StateChanged  = "changed"
)

type rootRecord struct {
	Name  string    `json:"name"`
	Size  uint64    `json:"size"`
	Dir   bool      `json:"dir,omitempty"`
	Path  string    `json:"path,omitempty"` // top-level path on disk
	Temp  string    `json:"temp,omitempty"` // partial download's temporary path
	State string    `json:"state"`          // StateComplete or StatePartial
	Added time.Time `json:"added"`
	Copy  bool      `json:"copy,omitempty"`
}

type fileRecord struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// The file's identity when its leaves were last verified (zero while
	// a download writes it). On Linux every write changes ctime, so a file
	// whose identity is unchanged holds the same bytes.
	MTimeNs int64  `json:"mtime_ns,omitempty"`
	CTimeNs int64  `json:"ctime_ns,omitempty"`
	Dev     uint64 `json:"dev,omitempty"`
	Ino     uint64 `json:"ino,omitempty"`
	// When that identity was taken, before every leaf of the file was
	// hashed (by add); 0 if the file was not verified as a whole (a
	// download's, an older record): its leaves are then hashed when
	// served until the seed has verified them itself (see leafTrust).
	VerifiedNs int64  `json:"verified_ns,omitempty"`
	Root       string `json:"root"`
}

// identity tells one version of a file from another: device, inode,
// size, mtime and ctime, as fstat gives them.
type identity struct {
	Size, MTimeNs, CTimeNs int64
	Dev, Ino               uint64
}

func identityOf(fi os.FileInfo) identity {
	id := identity{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.CTimeNs = st.Ctim.Nano()
		id.Dev, id.Ino = uint64(st.Dev), st.Ino
	}
	return id
}

// identityMargin is how much older than the moment it was taken an
// identity's ctime must be to vouch for the file's bytes (git's rule for
// "racily clean" files): a write within the same timestamp granule as the
// stat (a clock tick, or the 1-2 s of coarse filesystems) could leave
// ctime as it was.
const identityMargin = 2 * time.Second

// settled reports whether id, taken at the wall time at (Unix ns), can
// vouch for the bytes: any later write gives the file a ctime of its own.
func (id identity) settled(at int64) bool {
	return id.CTimeNs != 0 && id.CTimeNs < at-identityMargin.Nanoseconds()
}

// fileRecordOf records the file at path, as fi describes it, for root.
func fileRecordOf(path string, fi os.FileInfo, root cid.Cid) fileRecord {
	id := identityOf(fi)
	return fileRecord{Path: path, Size: id.Size, MTimeNs: id.MTimeNs, CTimeNs: id.CTimeNs, Dev: id.Dev, Ino: id.Ino, Root: root.String()}
}

func (f fileRecord) identity() identity {
	return identity{Size: f.Size, MTimeNs: f.MTimeNs, CTimeNs: f.CTimeNs, Dev: f.Dev, Ino: f.Ino}
}

// verifiedAs reports whether every leaf of the file was verified while it
// had identity id, settled (so its bytes are those verified).
func (f fileRecord) verifiedAs(id identity) bool {
	return f.VerifiedNs != 0 && f.identity() == id && id.settled(f.VerifiedNs)
}

// changed reports whether the file fi describes is no longer the one
// recorded (older records carry no ctime, device or inode).
func (f fileRecord) changed(fi os.FileInfo) bool {
	now := identityOf(fi)
	switch {
	case now.Size != f.Size:
		return true
	case f.MTimeNs != 0 && now.MTimeNs != f.MTimeNs:
		return true
	case f.CTimeNs != 0 && (now.CTimeNs != f.CTimeNs || now.Dev != f.Dev || now.Ino != f.Ino):
		return true
	}
	return false
}

type index struct {
	ds ds.Batching
}

func rootKey(c cid.Cid) ds.Key  { return ds.NewKey("/root/" + c.String()) }
func blockKey(c cid.Cid) ds.Key { return ds.NewKey("/block/" + c.String()) }
func fileKey(id string) ds.Key  { return ds.NewKey("/file/" + id) }
func rootFileKey(r cid.Cid, id string) ds.Key {
	return ds.NewKey("/rootfile/" + r.String() + "/" + id)
}
func locPrefix(c cid.Cid) string { return "/loc/" + c.String() + "/" }
func locKey(c cid.Cid, id string, off uint64) ds.Key {
	return ds.NewKey(locPrefix(c) + id + "/" + strconv.FormatUint(off, 10))
}
func flocKey(id string, off uint64) ds.Key {
	return ds.NewKey("/floc/" + id + "/" + strconv.FormatUint(off, 10))
}

func newFileID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (ix *index) getJSON(ctx context.Context, k ds.Key, v any) error {
	raw, err := ix.ds.Get(ctx, k)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func (ix *index) root(ctx context.Context, c cid.Cid) (rootRecord, error) {
	var r rootRecord
	err := ix.getJSON(ctx, rootKey(c), &r)
	return r, err
}

// putRoot writes a root record and syncs it to disk.
func (ix *index) putRoot(ctx context.Context, c cid.Cid, r rootRecord) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := ix.ds.Put(ctx, rootKey(c), raw); err != nil {
		return fmt.Errorf("recording root %s: %w", c, err)
	}
	return ix.ds.Sync(ctx, rootKey(c))
}

// sync makes every index write so far survive a crash.
func (ix *index) sync(ctx context.Context) error {
	if err := ix.ds.Sync(ctx, ds.NewKey("/")); err != nil {
		return fmt.Errorf("syncing index: %w", err)
	}
	return nil
}

type rootEntry struct {
	CID cid.Cid
	rootRecord
}

func (ix *index) roots(ctx context.Context) ([]rootEntry, error) {
	res, err := ix.ds.Query(ctx, query.Query{Prefix: "/root/"})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []rootEntry
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		c, err := cid.Decode(strings.TrimPrefix(e.Key, "/root/"))
		if err != nil {
			continue
		}
		var r rootRecord
		if json.Unmarshal(e.Value, &r) != nil {
			continue
		}
		out = append(out, rootEntry{c, r})
	}
	return out, nil
}

// rootFiles lists the file IDs and records of a root.
func (ix *index) rootFiles(ctx context.Context, c cid.Cid) (map[string]fileRecord, error) {
	prefix := "/rootfile/" + c.String() + "/"
	res, err := ix.ds.Query(ctx, query.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	out := map[string]fileRecord{}
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		id := strings.TrimPrefix(e.Key, prefix)
		var f fileRecord
		if err := ix.getJSON(ctx, fileKey(id), &f); err != nil {
			if errors.Is(err, ds.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out[id] = f
	}
	return out, nil
}

// location is one place where a raw leaf lies.
type location struct {
	FileID string
	Offset uint64
	Size   uint64
}

func (ix *index) locations(ctx context.Context, c cid.Cid) ([]location, error) {
	prefix := locPrefix(c)
	res, err := ix.ds.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []location
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		rest := strings.TrimPrefix(e.Key, prefix)
		id, offStr, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		off, err := strconv.ParseUint(offStr, 10, 64)
		if err != nil {
			continue
		}
		size, n := binary.Uvarint(e.Value)
		if n <= 0 {
			continue
		}
		out = append(out, location{id, off, size})
	}
	return out, nil
}

// batch collects index writes and commits them every few thousand operations.
type batch struct {
	ctx context.Context
	ix  *index
	b   ds.Batch
	n   int
}

func (ix *index) newBatch(ctx context.Context) (*batch, error) {
	b, err := ix.ds.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &batch{ctx: ctx, ix: ix, b: b}, nil
}

func (b *batch) put(k ds.Key, v []byte) error {
	if err := b.b.Put(b.ctx, k, v); err != nil {
		return err
	}
	b.n++
	if b.n >= 4096 {
		return b.flush()
	}
	return nil
}

func (b *batch) del(k ds.Key) error {
	if err := b.b.Delete(b.ctx, k); err != nil {
		return err
	}
	b.n++
	if b.n >= 4096 {
		return b.flush()
	}
	return nil
}

func (b *batch) flush() error {
	if b.n == 0 {
		return nil
	}
	if err := b.b.Commit(b.ctx); err != nil {
		return fmt.Errorf("writing index: %w", err)
	}
	nb, err := b.ix.ds.Batch(b.ctx)
	if err != nil {
		return err
	}
	b.b, b.n = nb, 0
	return nil
}

func (b *batch) putLoc(c cid.Cid, id string, off, size uint64) error {
	var v [binary.MaxVarintLen64]byte
	if err := b.put(locKey(c, id, off), v[:binary.PutUvarint(v[:], size)]); err != nil {
		return err
	}
	return b.put(flocKey(id, off), c.Bytes())
}

func (b *batch) putJSON(k ds.Key, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.put(k, raw)
}

// deleteFile removes a file record, its leaf locations and its root link.
func (ix *index) deleteFile(ctx context.Context, b *batch, root cid.Cid, id string) error {
	prefix := "/floc/" + id + "/"
	res, err := ix.ds.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return err
	}
	var entries []query.Result
	for e := range res.Next() {
		if e.Error != nil {
			res.Close()
			return e.Error
		}
		entries = append(entries, e)
	}
	res.Close()
	for _, e := range entries {
		off, err := strconv.ParseUint(strings.TrimPrefix(e.Key, prefix), 10, 64)
		if err != nil {
			continue
		}
		if c, err := cid.Cast(e.Value); err == nil {
			if err := b.del(locKey(c, id, off)); err != nil {
				return err
			}
		}
		if err := b.del(ds.NewKey(e.Key)); err != nil {
			return err
		}
	}
	if err := b.del(fileKey(id)); err != nil {
		return err
	}
	return b.del(rootFileKey(root, id))
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
