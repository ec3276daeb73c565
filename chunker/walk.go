package chunker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	"github.com/spaolacci/murmur3"
)

// ErrUnsafeName is returned by Walk for a directory entry whose name could
// escape the output folder or is not a single path element.
var ErrUnsafeName = errors.New("unsafe name in DAG")

// ErrDuplicateName is returned (wrapped with ErrMalformed) for a folder
// that names two entries alike: written out, one would overwrite the other.
var ErrDuplicateName = errors.New("duplicate name in folder")

// maxWalkDepth bounds nesting (folders, HAMT shards and file tree levels
// together), so a malicious DAG cannot exhaust the stack.
const maxWalkDepth = 256

// Entry is one file, folder or symlink of a DAG.
type Entry struct {
	// Path is slash-separated and relative to the root; "" for the root.
	Path string
	// Kind is KindFile, KindDirectory or KindSymlink.
	Kind Kind
	// CID is the entry's block.
	CID cid.Cid
	// Size is a file's size.
	Size uint64
	// Target is a symlink's target, as the DAG gives it (untrusted).
	Target string
	// Spans make up a file's content, in file order, without gaps.
	Spans []Span
}

// A Span is a run of a file's bytes. If Leaf is defined, the run is that
// raw leaf, and this is the first place in the walk where the leaf
// appears. Otherwise the run repeats bytes that appeared earlier in the
// walk: those at SrcOffset in the file at SrcPath (possibly this file).
// A DAG that repeats a leaf or a whole sub-tree a million times thus has a
// span list as long as its distinct blocks' links, not a million leaves.
type Span struct {
	Offset, Size uint64
	Leaf         cid.Cid
	SrcPath      string
	SrcOffset    uint64
}

// Stats is what a DAG claims, counted at every place a part appears:
// what writing it out would take.
type Stats struct {
	// Size is the bytes of all files (saturating at math.MaxUint64).
	Size uint64
	// Entries counts files, folders and symlinks (saturating).
	Entries uint64
	// Path is the length in bytes of the longest entry path ("a/b/c",
	// relative to the root; 0 for a root that is not a folder).
	Path uint64
}

func (s Stats) add(o Stats) Stats {
	return Stats{Size: satAdd(s.Size, o.Size), Entries: satAdd(s.Entries, o.Entries)}
}

// entryPath is the length of the longest path below a folder through its
// entry name, whose sub-DAG claims child.
func entryPath(name string, child Stats) uint64 {
	p := uint64(len(name))
	if child.Path > 0 {
		p = satAdd(p, 1+child.Path)
	}
	return p
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// Getter returns a block's bytes.
type Getter func(ctx context.Context, c cid.Cid) ([]byte, error)

// Stat checks the whole DAG under root and sums what it claims. It fetches
// every dag-pb block (and a raw root) through get once, however often the
// DAG links to it, and verifies each against its CID (unless get did:
// see Verified); raw leaves below it
// are not fetched (their sizes come from their parents). Time and memory
// grow with the distinct blocks, not with the sizes they claim. It honours
// ctx between blocks.
//
// Stat refuses (with ErrMalformed) blocks that do not decode, file trees
// whose sizes disagree, folders with two entries of one name
// (ErrDuplicateName), and names that are empty, ".", "..", or contain '/',
// '\\' or NUL (ErrUnsafeName). Legacy files with data inside dag-pb nodes
// are not supported.
func Stat(ctx context.Context, root cid.Cid, get Getter, opts ...Option) (Stats, error) {
	w := newWalker(get, opts)
	info, err := w.check(ctx, root, 0)
	return info.Stats, err
}

// Walk checks the DAG under root as Stat does, then visits it depth-first,
// a directory before its entries, entries in stored order. A file's Spans
// name each distinct leaf once, at its first appearance in the walk.
func Walk(ctx context.Context, root cid.Cid, get Getter, fn func(Entry) error, opts ...Option) error {
	w := newWalker(get, opts)
	if _, err := w.check(ctx, root, 0); err != nil {
		return err
	}
	return w.emit(ctx, "", root, fn)
}

// Leaves calls fn with each distinct leaf of the DAG under root, in the
// order of first appearance.
func Leaves(ctx context.Context, root cid.Cid, get Getter, fn func(cid.Cid) error, opts ...Option) error {
	return Walk(ctx, root, get, func(e Entry) error {
		for _, s := range e.Spans {
			if s.Leaf.Defined() {
				if err := fn(s.Leaf); err != nil {
					return err
				}
			}
		}
		return nil
	}, opts...)
}

// Option changes how Stat, Walk and Leaves treat the blocks get returns.
type Option func(*walker)

// Verified says that get returns only blocks already verified against
// their CIDs: a store that checks what it hands out, or a fetcher that
// checks what arrives. The walk then does not hash them again (for a
// file of one leaf, the root, that is up to MaxBlockSize of SHA-256 per
// walk); everything else (decoding, sizes, names, depth) is checked as
// before. Never pass it with a getter that returns bytes from the network
// or from a file unchecked.
func Verified() Option { return func(w *walker) { w.verified = true } }

type walker struct {
	get      Getter
	verified bool                 // get verifies (Verified)
	checked  map[cid.Cid]nodeInfo // dag-pb blocks checked, by check
	shards   map[shardKey]Stats   // HAMT shards checked at a place in a HAMT
	leaves   map[cid.Cid]uint64   // raw leaves' claimed sizes, by check
	first    map[cid.Cid]place    // where a leaf or file node first appeared, by emit
}

type nodeInfo struct {
	kind Kind
	Stats
}

type place struct {
	path string
	off  uint64
}

func newWalker(get Getter, opts []Option) *walker {
	w := &walker{get: get, checked: map[cid.Cid]nodeInfo{}, shards: map[shardKey]Stats{}, leaves: map[cid.Cid]uint64{}, first: map[cid.Cid]place{}}
	for _, o := range opts {
		o(w)
	}
	return w
}

func (w *walker) fetch(ctx context.Context, c cid.Cid) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := w.get(ctx, c)
	if err != nil {
		return nil, err
	}
	if !w.verified {
		if err := Verify(c, data); err != nil {
			return nil, err
		}
	}
	n, err := Decode(c, data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", c, err)
	}
	return n, nil
}

func isRawCID(c cid.Cid) bool { return c.Prefix().Codec == uint64(multicodec.Raw) }

// CheckName refuses a name that is not one plain path element: empty, "."
// or "..", or holding a slash, a backslash or a NUL (ErrUnsafeName). Every
// name from the network (folder entries, a ticket's name) passes it before
// anything is created under it.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("%w: %q", ErrUnsafeName, name)
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// check validates the sub-DAG under c, once per distinct block.
func (w *walker) check(ctx context.Context, c cid.Cid, depth int) (nodeInfo, error) {
	if depth > maxWalkDepth {
		return nodeInfo{}, fmt.Errorf("%w: DAG nested deeper than %d", ErrMalformed, maxWalkDepth)
	}
	if info, ok := w.checked[c]; ok {
		return info, nil
	}
	n, err := w.fetch(ctx, c)
	if err != nil {
		return nodeInfo{}, err
	}
	info := nodeInfo{kind: n.Kind, Stats: Stats{Entries: 1}}
	switch n.Kind {
	case KindRaw:
		info.kind, info.Size = KindFile, n.FileSize
	case KindFile:
		if err := w.checkFile(ctx, c, n, depth); err != nil {
			return nodeInfo{}, err
		}
		info.Size = n.FileSize
	case KindSymlink:
	case KindHAMTShard:
		info.kind = KindDirectory
		st, err := w.checkShard(ctx, c, n, nil, depth)
		if err != nil {
			return nodeInfo{}, err
		}
		info.Stats = info.add(st)
		info.Path = st.Path
	case KindDirectory:
		info.kind = KindDirectory
		err := w.entries(ctx, n, depth, func(name string, l Link) error {
			child, err := w.checkChild(ctx, l, depth+1)
			if err != nil {
				return err
			}
			info.Stats = info.add(child.Stats)
			info.Path = max(info.Path, entryPath(name, child.Stats))
			return nil
		})
		if err != nil {
			return nodeInfo{}, err
		}
	default:
		return nodeInfo{}, fmt.Errorf("%w: unexpected %s node", ErrMalformed, n.Kind)
	}
	w.checked[c] = info
	return info, nil
}

// checkChild checks a directory entry; a raw one is a one-leaf file whose
// size the link gives.
func (w *walker) checkChild(ctx context.Context, l Link, depth int) (nodeInfo, error) {
	if !isRawCID(l.CID) {
		return w.check(ctx, l.CID, depth)
	}
	if l.Size > MaxBlockSize {
		return nodeInfo{}, fmt.Errorf("%w: raw entry of %d bytes", ErrMalformed, l.Size)
	}
	if err := w.leafSize(l.CID, l.Size); err != nil {
		return nodeInfo{}, err
	}
	return nodeInfo{kind: KindFile, Stats: Stats{Size: l.Size, Entries: 1}}, nil
}

// leafSize records the size a link claims for raw leaf c, refusing a DAG
// that claims two sizes for one leaf: the bytes of a repeat are copied
// from the leaf's first place, so a repeat claimed longer would copy the
// bytes that follow it there (or zeros), and one claimed shorter would
// cut it, and the result would not be the DAG's.
func (w *walker) leafSize(c cid.Cid, size uint64) error {
	if s, ok := w.leaves[c]; ok && s != size {
		return fmt.Errorf("%w: leaf %s claimed as %d and as %d bytes", ErrMalformed, c, s, size)
	}
	w.leaves[c] = size
	return nil
}

// checkFile checks that every part of file node n (CID c) is a leaf of at
// most MaxBlockSize or a file node of the size n gives it.
func (w *walker) checkFile(ctx context.Context, c cid.Cid, n *Node, depth int) error {
	if len(n.Data) > 0 {
		return fmt.Errorf("%w: file data inside dag-pb nodes (legacy leaves) is not supported", ErrMalformed)
	}
	for i, l := range n.Links {
		size := n.BlockSizes[i]
		if isRawCID(l.CID) {
			if size > MaxBlockSize {
				return fmt.Errorf("%w: leaf of %d bytes", ErrMalformed, size)
			}
			if err := w.leafSize(l.CID, size); err != nil {
				return err
			}
			continue
		}
		child, err := w.check(ctx, l.CID, depth+1)
		if err != nil {
			return err
		}
		if child.kind != KindFile || child.Size != size {
			return fmt.Errorf("%w: file part %s is a %s of %d bytes, %s says %d", ErrMalformed, l.CID, child.kind, child.Size, c, size)
		}
	}
	return nil
}

// entries calls fn for each entry of directory or HAMT shard n, refusing
// unsafe and duplicate names. A HAMT's buckets are fetched on the way.
func (w *walker) entries(ctx context.Context, n *Node, depth int, fn func(name string, l Link) error) error {
	seen := map[string]bool{}
	visit := func(name string, l Link) error {
		if err := CheckName(name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("%w: %w: %q", ErrMalformed, ErrDuplicateName, name)
		}
		seen[name] = true
		return fn(name, l)
	}
	if n.Kind == KindDirectory {
		for _, l := range n.Links {
			if err := visit(l.Name, l); err != nil {
				return err
			}
		}
		return nil
	}
	return w.shard(ctx, n, depth, map[cid.Cid]bool{}, visit)
}

// A shardKey is a HAMT shard at a place in its HAMT: the buckets taken
// from the top (fanout bits and index, each a byte pair). What a shard
// holds is valid, or not, for the place it sits at.
type shardKey struct {
	c    cid.Cid
	path string
}

// checkShard checks the HAMT shard c (n, or fetched if nil) found at
// path and sums what its entries claim, once per shard and place however
// many HAMTs link to it. Every entry must sit in the bucket its name's
// hash (murmur3-x64-64, as boxo and Kubo place it) gives at every level,
// and a shard uses each bucket once: so no two entries of one HAMT can
// share a name, without collecting the names.
func (w *walker) checkShard(ctx context.Context, c cid.Cid, n *Node, path []byte, depth int) (Stats, error) {
	if depth > maxWalkDepth {
		return Stats{}, fmt.Errorf("%w: HAMT nested deeper than %d", ErrMalformed, maxWalkDepth)
	}
	key := shardKey{c, string(path)}
	if st, ok := w.shards[key]; ok {
		return st, nil
	}
	if n == nil {
		var err error
		if n, err = w.fetch(ctx, c); err != nil {
			return Stats{}, err
		}
		if n.Kind != KindHAMTShard {
			return Stats{}, fmt.Errorf("%w: HAMT bucket %s is a %s", ErrMalformed, c, n.Kind)
		}
	}
	bits := log2(n.Fanout)
	width := len(fmt.Sprintf("%X", n.Fanout-1))
	used := map[uint64]bool{}
	var st Stats
	for _, l := range n.Links {
		if err := ctx.Err(); err != nil {
			return Stats{}, err
		}
		if len(l.Name) < width {
			return Stats{}, fmt.Errorf("%w: HAMT link name %q", ErrMalformed, l.Name)
		}
		idx, err := strconv.ParseUint(l.Name[:width], 16, 16)
		if err != nil || idx >= n.Fanout || fmt.Sprintf("%0*X", width, idx) != l.Name[:width] {
			return Stats{}, fmt.Errorf("%w: HAMT link name %q", ErrMalformed, l.Name)
		}
		if used[idx] {
			return Stats{}, fmt.Errorf("%w: HAMT bucket %q used twice", ErrMalformed, l.Name[:width])
		}
		used[idx] = true
		here := append(path[:len(path):len(path)], byte(bits), byte(idx))
		if len(l.Name) == width {
			sst, err := w.checkShard(ctx, l.CID, nil, here, depth+1)
			if err != nil {
				return Stats{}, err
			}
			st = st.add(sst)
			st.Path = max(st.Path, sst.Path)
			continue
		}
		name := l.Name[width:]
		if err := CheckName(name); err != nil {
			return Stats{}, err
		}
		if !placed(name, here) {
			return Stats{}, fmt.Errorf("%w: HAMT entry %q is not in the bucket its hash gives", ErrMalformed, name)
		}
		child, err := w.checkChild(ctx, l, depth+1)
		if err != nil {
			return Stats{}, err
		}
		st = st.add(child.Stats)
		st.Path = max(st.Path, entryPath(name, child.Stats))
	}
	w.shards[key] = st
	return st, nil
}

// placed reports whether name's hash takes the buckets of path (fanout
// bits and index, a byte pair each) from the top.
func placed(name string, path []byte) bool {
	h := murmur3.New64()
	h.Write([]byte(name))
	hb := hashBits{b: h.Sum(nil)}
	for i := 0; i+1 < len(path); i += 2 {
		if v, ok := hb.next(int(path[i])); !ok || v != int(path[i+1]) {
			return false
		}
	}
	return true
}

// shard visits the entries of a HAMT shard: a link named by the two-hex
// digit bucket alone is a sub-shard; otherwise the name after the bucket
// prefix is the entry's. A bucket linked twice is malformed.
func (w *walker) shard(ctx context.Context, n *Node, depth int, buckets map[cid.Cid]bool, visit func(string, Link) error) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%w: HAMT nested deeper than %d", ErrMalformed, maxWalkDepth)
	}
	prefix := len(fmt.Sprintf("%X", n.Fanout-1))
	for _, l := range n.Links {
		if len(l.Name) < prefix {
			return fmt.Errorf("%w: HAMT link name %q", ErrMalformed, l.Name)
		}
		if len(l.Name) > prefix {
			if err := visit(l.Name[prefix:], l); err != nil {
				return err
			}
			continue
		}
		if buckets[l.CID] {
			return fmt.Errorf("%w: HAMT bucket %s linked twice", ErrMalformed, l.CID)
		}
		buckets[l.CID] = true
		sub, err := w.fetch(ctx, l.CID)
		if err != nil {
			return err
		}
		if sub.Kind != KindHAMTShard {
			return fmt.Errorf("%w: HAMT bucket %q is a %s", ErrMalformed, l.Name, sub.Kind)
		}
		if err := w.shard(ctx, sub, depth+1, buckets, visit); err != nil {
			return err
		}
	}
	return nil
}

// emit reports the checked sub-DAG under c, found at path.
func (w *walker) emit(ctx context.Context, path string, c cid.Cid, fn func(Entry) error) error {
	if info, ok := w.checked[c]; ok && isRawCID(c) {
		// A raw root check fetched and verified a moment ago: its size is
		// all emit needs (fetching it again means reading and hashing up
		// to a MiB once more).
		e := Entry{Path: path, Kind: KindFile, CID: c, Size: info.Size}
		w.leafSpan(path, 0, c, info.Size, &e.Spans)
		return fn(e)
	}
	n, err := w.fetch(ctx, c)
	if err != nil {
		return err
	}
	switch n.Kind {
	case KindRaw:
		e := Entry{Path: path, Kind: KindFile, CID: c, Size: n.FileSize}
		w.leafSpan(path, 0, c, n.FileSize, &e.Spans)
		return fn(e)
	case KindFile:
		e := Entry{Path: path, Kind: KindFile, CID: c, Size: n.FileSize}
		if err := w.fileSpans(ctx, path, 0, c, n, n.FileSize, &e.Spans); err != nil {
			return err
		}
		return fn(e)
	case KindSymlink:
		return fn(Entry{Path: path, Kind: KindSymlink, CID: c, Target: string(n.Data)})
	}
	if err := fn(Entry{Path: path, Kind: KindDirectory, CID: c}); err != nil {
		return err
	}
	return w.entries(ctx, n, 0, func(name string, l Link) error {
		p := join(path, name)
		if !isRawCID(l.CID) {
			return w.emit(ctx, p, l.CID, fn)
		}
		e := Entry{Path: p, Kind: KindFile, CID: l.CID, Size: l.Size}
		w.leafSpan(p, 0, l.CID, l.Size, &e.Spans)
		return fn(e)
	})
}

// leafSpan appends the span of leaf c at off in the file at path.
func (w *walker) leafSpan(path string, off uint64, c cid.Cid, size uint64, spans *[]Span) {
	if p, ok := w.first[c]; ok {
		*spans = append(*spans, Span{Offset: off, Size: size, SrcPath: p.path, SrcOffset: p.off})
		return
	}
	w.first[c] = place{path, off}
	*spans = append(*spans, Span{Offset: off, Size: size, Leaf: c})
}

// fileSpans appends the spans of the file node c (n, or fetched if nil)
// of size bytes at off in the file at path: one span if the node appeared
// before (it is not even fetched again), else those of its parts.
func (w *walker) fileSpans(ctx context.Context, path string, off uint64, c cid.Cid, n *Node, size uint64, spans *[]Span) error {
	if p, ok := w.first[c]; ok {
		*spans = append(*spans, Span{Offset: off, Size: size, SrcPath: p.path, SrcOffset: p.off})
		return nil
	}
	w.first[c] = place{path, off}
	if n == nil {
		var err error
		if n, err = w.fetch(ctx, c); err != nil {
			return err
		}
	}
	for i, l := range n.Links {
		size := n.BlockSizes[i]
		if isRawCID(l.CID) {
			w.leafSpan(path, off, l.CID, size, spans)
		} else if err := w.fileSpans(ctx, path, off, l.CID, nil, size, spans); err != nil {
			return err
		}
		off += size
	}
	return nil
}
