package chunker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
)

// ErrUnsafeName is returned by Walk for a directory entry whose name could
// escape the output folder or is not a single path element.
var ErrUnsafeName = errors.New("unsafe name in DAG")

// maxWalkDepth bounds nesting (folders, HAMT shards and file tree levels
// together), so a malicious DAG cannot exhaust the stack.
const maxWalkDepth = 256

// Leaf is one raw leaf of a file at its offset.
type Leaf struct {
	CID    cid.Cid
	Offset uint64
	Size   uint64
}

// Entry is one file, folder or symlink of a DAG.
type Entry struct {
	// Path is slash-separated and relative to the root; "" for the root.
	Path string
	// Kind is KindFile, KindDirectory or KindSymlink.
	Kind Kind
	// Size is a file's size.
	Size uint64
	// Target is a symlink's target.
	Target string
	// Leaves are a file's leaves in file order (a CID may repeat).
	Leaves []Leaf
}

// Getter returns a block's bytes.
type Getter func(ctx context.Context, c cid.Cid) ([]byte, error)

// Walk visits the DAG under root depth-first, a directory before its
// entries, entries in stored order. It fetches every dag-pb block and a raw
// root through get, and verifies each against its CID; raw leaves below a
// file node are not fetched (their sizes come from the parent). Names that
// are empty, ".", "..", or contain '/', '\\' or NUL give ErrUnsafeName.
// Legacy files with data inside dag-pb nodes are not supported.
func Walk(ctx context.Context, root cid.Cid, get Getter, fn func(Entry) error) error {
	w := walker{get: get, fn: fn}
	n, err := w.fetch(ctx, root)
	if err != nil {
		return err
	}
	return w.visit(ctx, "", root, n, 0)
}

type walker struct {
	get Getter
	fn  func(Entry) error
}

func (w *walker) fetch(ctx context.Context, c cid.Cid) (*Node, error) {
	data, err := w.get(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := Verify(c, data); err != nil {
		return nil, err
	}
	n, err := Decode(c, data)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", c, err)
	}
	return n, nil
}

func isRawCID(c cid.Cid) bool { return c.Prefix().Codec == uint64(multicodec.Raw) }

func checkName(name string) error {
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

// visit reports the node n (CID c) found at path.
func (w *walker) visit(ctx context.Context, path string, c cid.Cid, n *Node, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%w: DAG nested deeper than %d", ErrMalformed, maxWalkDepth)
	}
	switch n.Kind {
	case KindRaw:
		return w.fn(Entry{Path: path, Kind: KindFile, Size: n.FileSize, Leaves: []Leaf{{CID: c, Size: n.FileSize}}})
	case KindFile:
		e := Entry{Path: path, Kind: KindFile, Size: n.FileSize}
		if err := w.fileLeaves(ctx, n, 0, &e.Leaves, depth); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return w.fn(e)
	case KindSymlink:
		return w.fn(Entry{Path: path, Kind: KindSymlink, Target: string(n.Data)})
	case KindDirectory:
		if err := w.fn(Entry{Path: path, Kind: KindDirectory}); err != nil {
			return err
		}
		for _, l := range n.Links {
			if err := w.child(ctx, path, l.Name, l, depth); err != nil {
				return err
			}
		}
		return nil
	case KindHAMTShard:
		if err := w.fn(Entry{Path: path, Kind: KindDirectory}); err != nil {
			return err
		}
		return w.shard(ctx, path, n, depth)
	}
	return fmt.Errorf("%w: unexpected %s node", ErrMalformed, n.Kind)
}

// child visits a directory entry.
func (w *walker) child(ctx context.Context, dir, name string, l Link, depth int) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := join(dir, name)
	if isRawCID(l.CID) {
		if l.Size > MaxBlockSize {
			return fmt.Errorf("%w: raw entry %s of %d bytes", ErrMalformed, p, l.Size)
		}
		return w.fn(Entry{Path: p, Kind: KindFile, Size: l.Size, Leaves: []Leaf{{CID: l.CID, Size: l.Size}}})
	}
	n, err := w.fetch(ctx, l.CID)
	if err != nil {
		return err
	}
	return w.visit(ctx, p, l.CID, n, depth+1)
}

// shard visits the entries of a HAMT shard: a link named by the two-hex
// digit bucket alone is a sub-shard; otherwise the name after the bucket
// prefix is the entry's.
func (w *walker) shard(ctx context.Context, dir string, n *Node, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%w: HAMT nested deeper than %d", ErrMalformed, maxWalkDepth)
	}
	prefix := len(fmt.Sprintf("%X", n.Fanout-1))
	for _, l := range n.Links {
		if len(l.Name) < prefix {
			return fmt.Errorf("%w: HAMT link name %q", ErrMalformed, l.Name)
		}
		if len(l.Name) == prefix {
			sub, err := w.fetch(ctx, l.CID)
			if err != nil {
				return err
			}
			if sub.Kind != KindHAMTShard {
				return fmt.Errorf("%w: HAMT bucket %q is a %s", ErrMalformed, l.Name, sub.Kind)
			}
			if err := w.shard(ctx, dir, sub, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := w.child(ctx, dir, l.Name[prefix:], l, depth); err != nil {
			return err
		}
	}
	return nil
}

// fileLeaves appends the leaves under file node n, starting at offset off.
func (w *walker) fileLeaves(ctx context.Context, n *Node, off uint64, out *[]Leaf, depth int) error {
	if depth > maxWalkDepth {
		return fmt.Errorf("%w: file tree deeper than %d", ErrMalformed, maxWalkDepth)
	}
	if len(n.Data) > 0 {
		return fmt.Errorf("%w: file data inside dag-pb nodes (legacy leaves) is not supported", ErrMalformed)
	}
	for i, l := range n.Links {
		size := n.BlockSizes[i]
		if isRawCID(l.CID) {
			if size > MaxBlockSize {
				return fmt.Errorf("%w: leaf of %d bytes", ErrMalformed, size)
			}
			*out = append(*out, Leaf{CID: l.CID, Offset: off, Size: size})
		} else {
			child, err := w.fetch(ctx, l.CID)
			if err != nil {
				return err
			}
			if child.Kind != KindFile || child.FileSize != size {
				return fmt.Errorf("%w: file part %s is a %s of %d bytes, parent says %d", ErrMalformed, l.CID, child.Kind, child.FileSize, size)
			}
			if err := w.fileLeaves(ctx, child, off, out, depth+1); err != nil {
				return err
			}
		}
		off += size
	}
	return nil
}
