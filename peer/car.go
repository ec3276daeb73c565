package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/chunker"
)

// CAR export and import, through github.com/ipld/go-car/v2 (the IPFS
// ecosystem's own CAR library; see ARCHITECTURE.md).
//
// Export writes a CARv1 whose one root is the exported CID, then every
// block of the DAG under it once, in depth-first order (a node before its
// children, children in link order), as Kubo's `ipfs dag export` does.
// Blocks are read from where they lie in the repo (Store.Get verifies
// each), written as they are read: memory grows with the number of
// distinct blocks (their CIDs, to emit each once), not with their bytes.
//
// Import reads a CARv1 or CARv2, verifies every block against its CID
// (raw or dag-pb, full SHA2-256 or identity only: chunker.Verify), keeps
// every block in the repo (/block/, as `add --copy` keeps leaves), then
// checks that the DAG under each root is complete and well-formed
// (chunker.Stat and chunker.Leaves over the repo's blocks) and only then
// writes the roots' records. A CAR refused at any step leaves no root
// behind, and the blocks it brought are deleted again.

// ErrBadCAR is wrapped by Import's error for a CAR that is malformed,
// truncated, holds a block that does not match its CID, or does not hold
// the complete DAG of each root it names.
var ErrBadCAR = errors.New("bad CAR")

// ErrPartialRoot is wrapped by Export's error for a root whose download
// has not finished.
var ErrPartialRoot = errors.New("only partly in this repo")

const (
	// maxCARHeader bounds a CAR header (its roots), in bytes (1 MiB,
	// some 25 000 roots): go-car refuses a longer one before allocating.
	maxCARHeader = 1 << 20
	// maxCARSection bounds one CAR section: a CID and a block of at most
	// chunker.MaxBlockSize bytes.
	maxCARSection = chunker.MaxBlockSize + 256
)

// ExportStats describes an exported CAR.
type ExportStats struct {
	Blocks int   `json:"blocks"`
	Bytes  int64 `json:"bytes"` // of the whole CAR
}

// Export writes the DAG under root to w as a CARv1 (see the comment at the
// top of car.go). root may be a shared root or any block the repo holds.
// Nothing is written to w before the DAG's structure has been checked;
// an error after that (a leaf's file changed on disk since add) leaves a
// truncated CAR in w. It honours ctx between blocks.
func (r *Repo) Export(ctx context.Context, root cid.Cid, w io.Writer) (ExportStats, error) {
	if err := chunker.CheckCID(root); err != nil {
		return ExportStats{}, err
	}
	st := r.store()
	rec, err := r.index.root(ctx, root)
	switch {
	case err == nil && rec.State == StatePartial:
		return ExportStats{}, fmt.Errorf("exporting %s: %w (finish the download with p2pshare get first)", root, ErrPartialRoot)
	case err != nil && !errors.Is(err, ds.ErrNotFound):
		return ExportStats{}, err
	}
	if ok, err := st.Has(ctx, root); err != nil {
		return ExportStats{}, err
	} else if !ok && !isIdentity(root) {
		return ExportStats{}, fmt.Errorf("exporting %s: %w", root, ErrNotShared)
	}
	if _, err := chunker.Stat(ctx, root, exportGetter(st)); err != nil {
		return ExportStats{}, fmt.Errorf("exporting %s: %w", root, err)
	}
	cw := &countingWriter{w: w}
	// countingWriter hides any io.WriterAt of w (an *os.File that is a
	// pipe): go-car would then write at offsets.
	out, err := storage.NewWritable(cw, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		return ExportStats{}, fmt.Errorf("writing CAR header: %w", err)
	}
	stats := ExportStats{}
	seen := map[cid.Cid]struct{}{}
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[c]; ok {
			continue
		}
		seen[c] = struct{}{}
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		data, err := exportGetter(st)(ctx, c)
		if err != nil {
			return stats, fmt.Errorf("exporting %s: %w", root, err)
		}
		if !isIdentity(c) { // go-car leaves identity blocks out: their data is their CID
			if err := out.Put(ctx, c.KeyString(), data); err != nil {
				return stats, fmt.Errorf("writing CAR: %w", err)
			}
			stats.Blocks++
		}
		if c.Prefix().Codec != uint64(multicodec.DagPb) {
			continue
		}
		n, err := chunker.Decode(c, data)
		if err != nil {
			return stats, fmt.Errorf("exporting %s: decoding %s: %w", root, c, err)
		}
		for i := len(n.Links) - 1; i >= 0; i-- {
			if _, ok := seen[n.Links[i].CID]; !ok {
				stack = append(stack, n.Links[i].CID)
			}
		}
	}
	stats.Bytes = cw.n
	return stats, nil
}

// exportGetter reads verified blocks through st, identity blocks from
// their CIDs.
func exportGetter(st *Store) chunker.Getter {
	return func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if isIdentity(c) {
			return identityData(c)
		}
		return st.Get(ctx, c)
	}
}

func isIdentity(c cid.Cid) bool { return c.Defined() && c.Prefix().MhType == mh.IDENTITY }

func identityData(c cid.Cid) ([]byte, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, err
	}
	return d.Digest, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ImportResult describes an imported CAR.
type ImportResult struct {
	Roots []ImportedRoot `json:"roots"`
	// Blocks and Bytes count the CAR's blocks; New counts those the repo
	// did not hold before.
	Blocks int   `json:"blocks"`
	New    int   `json:"new"`
	Bytes  int64 `json:"bytes"`
}

// ImportedRoot is one root of an imported CAR.
type ImportedRoot struct {
	CID  string `json:"cid"`
	Size uint64 `json:"size"` // content bytes under it
	Dir  bool   `json:"dir,omitempty"`
	// Shared is true if the repo already shared this root; its record
	// was left as it was.
	Shared bool `json:"already_shared,omitempty"`
}

// Import imports the CAR file at path (see ImportReader). A file that
// cannot be opened gives os.Open's error (fs.ErrNotExist for a missing
// one); anything wrong with its content wraps ErrBadCAR.
func (r *Repo) Import(ctx context.Context, path string) (ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return ImportResult{}, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return ImportResult{}, fmt.Errorf("%s: %w: not a regular file", path, ErrBadCAR)
	}
	return r.ImportReader(ctx, f)
}

// ImportReader reads a CAR from rd and adds its roots to the repo as
// complete, shared roots (named by their CID). Every block is verified;
// the roots are recorded only once every block is stored and the DAG
// under each root is found complete and well-formed. An error about the
// CAR wraps ErrBadCAR; the repo is then as it was (the blocks stored from
// the CAR are deleted). A root the repo already shares keeps its record.
func (r *Repo) ImportReader(ctx context.Context, rd io.Reader) (res ImportResult, err error) {
	br, err := car.NewBlockReader(rd, car.MaxAllowedHeaderSize(maxCARHeader), car.MaxAllowedSectionSize(maxCARSection),
		car.WithTrustedCAR(true)) // every block is verified below, by chunker.Verify
	if err != nil {
		return res, fmt.Errorf("%w: reading the header: %v", ErrBadCAR, carError(err))
	}
	roots, err := importRoots(br.Roots)
	if err != nil {
		return res, err
	}
	b, err := r.index.newBatch(ctx)
	if err != nil {
		return res, err
	}
	// added lists the blocks this import stored (about 50 bytes each), to
	// delete them again if the CAR is refused.
	var added []cid.Cid
	defer func() {
		if err != nil {
			if rerr := r.forgetBlocks(ctx, added); rerr != nil {
				err = fmt.Errorf("%w (and removing its blocks again: %v)", err, rerr)
			}
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("%w: block %d: %v", ErrBadCAR, res.Blocks+1, carError(err))
		}
		res.Blocks++
		c, data := blk.Cid(), blk.RawData()
		if err := chunker.Verify(c, data); err != nil {
			return res, fmt.Errorf("%w: block %d: %v", ErrBadCAR, res.Blocks, err)
		}
		res.Bytes += int64(len(data))
		if isIdentity(c) {
			continue
		}
		if ok, err := r.index.ds.Has(ctx, blockKey(c)); err != nil {
			return res, err
		} else if ok {
			continue
		}
		if err := b.put(blockKey(c), data); err != nil {
			return res, err
		}
		added = append(added, c)
	}
	res.New = len(added)
	if err := b.flush(); err != nil {
		return res, err
	}
	get := r.blockGetter()
	for _, root := range roots {
		ir, err := r.checkImported(ctx, root, get)
		if err != nil {
			return res, err
		}
		res.Roots = append(res.Roots, ir)
	}
	if err := r.index.sync(ctx); err != nil {
		return res, err
	}
	// The records last: a crash before them leaves only unlisted blocks.
	for i, root := range roots {
		if _, err := r.index.root(ctx, root); err == nil {
			res.Roots[i].Shared = true
			continue
		} else if !errors.Is(err, ds.ErrNotFound) {
			return res, err
		}
		rec := rootRecord{Name: root.String(), Size: res.Roots[i].Size, Dir: res.Roots[i].Dir,
			State: StateComplete, Added: time.Now().UTC(), Copy: true}
		if err := r.index.putRoot(ctx, root, rec); err != nil {
			return res, err
		}
	}
	return res, nil
}

// importRoots checks a CAR's roots: at least one, each a CID we accept;
// duplicates are dropped.
func importRoots(in []cid.Cid) ([]cid.Cid, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: the CAR names no root", ErrBadCAR)
	}
	var out []cid.Cid
	seen := map[cid.Cid]bool{}
	for _, c := range in {
		if err := chunker.CheckCID(c); err != nil {
			return nil, fmt.Errorf("%w: refused root: %v", ErrBadCAR, err)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// checkImported checks that the DAG under root is well-formed and that
// every block of it, leaves included, is kept in the repo.
func (r *Repo) checkImported(ctx context.Context, root cid.Cid, get chunker.Getter) (ImportedRoot, error) {
	if _, err := get(ctx, root); errors.Is(err, ErrBlockNotFound) {
		return ImportedRoot{}, fmt.Errorf("%w: root %s is not in the CAR", ErrBadCAR, root)
	}
	st, err := chunker.Stat(ctx, root, get)
	if err == nil {
		err = chunker.Leaves(ctx, root, get, func(c cid.Cid) error {
			_, err := get(ctx, c)
			return err
		})
	}
	switch {
	case errors.Is(err, ErrBlockNotFound):
		return ImportedRoot{}, fmt.Errorf("%w: the DAG under %s is incomplete: %v", ErrBadCAR, root, err)
	case errors.Is(err, chunker.ErrMalformed), errors.Is(err, chunker.ErrHashMismatch), errors.Is(err, chunker.ErrUnsafeName):
		return ImportedRoot{}, fmt.Errorf("%w: the DAG under %s: %v", ErrBadCAR, root, err)
	case err != nil:
		return ImportedRoot{}, err
	}
	data, err := get(ctx, root)
	if err != nil {
		return ImportedRoot{}, err
	}
	n, err := chunker.Decode(root, data)
	if err != nil {
		return ImportedRoot{}, fmt.Errorf("%w: root %s: %v", ErrBadCAR, root, err)
	}
	return ImportedRoot{CID: root.String(), Size: st.Size, Dir: n.Kind == chunker.KindDirectory || n.Kind == chunker.KindHAMTShard}, nil
}

// blockGetter reads blocks kept in the repo (/block/) only, never leaves
// indexed in place: an imported root must not depend on files that may
// go. Identity blocks come from their CIDs.
func (r *Repo) blockGetter() chunker.Getter {
	return func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if isIdentity(c) {
			return identityData(c)
		}
		data, err := r.index.ds.Get(ctx, blockKey(c))
		if errors.Is(err, ds.ErrNotFound) {
			return nil, fmt.Errorf("block %s: %w", c, ErrBlockNotFound)
		}
		return data, err
	}
}

// forgetBlocks deletes blocks that a refused import stored.
func (r *Repo) forgetBlocks(ctx context.Context, cs []cid.Cid) error {
	if len(cs) == 0 {
		return nil
	}
	// Not ctx: an interrupted import still cleans up after itself.
	ctx = context.WithoutCancel(ctx)
	b, err := r.index.newBatch(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := b.del(blockKey(c)); err != nil {
			return err
		}
	}
	return b.flush()
}

// carError names go-car's reading errors in our words.
func carError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("the file ends in the middle (truncated CAR?)")
	}
	return err
}
