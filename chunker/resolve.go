package chunker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/spaolacci/murmur3"
)

// ErrNoSuchEntry is returned (wrapped) by Resolve when a path element
// names nothing in its folder, or when an element before the last is not
// a folder.
var ErrNoSuchEntry = errors.New("no such file or folder")

// maxPathElements bounds the elements of a path Resolve follows.
const maxPathElements = maxWalkDepth

// SplitPath splits a path inside a root ("sub/dir/file", the part after
// the CID in /ipfs/CID/sub/dir/file) into its elements. A leading or
// trailing slash is ignored; "" and "/" give no elements (the root
// itself). Every element must be a safe name (see Stat): an empty
// element ("a//b"), ".", ".." or one with '\\' or NUL is refused with
// ErrUnsafeName.
func SplitPath(p string) ([]string, error) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	elems := strings.Split(p, "/")
	if len(elems) > maxPathElements {
		return nil, fmt.Errorf("%w: path of more than %d elements", ErrUnsafeName, maxPathElements)
	}
	for _, e := range elems {
		if err := CheckName(e); err != nil {
			return nil, err
		}
	}
	return elems, nil
}

// Resolve follows the path elems (see SplitPath) from root, as an IPFS
// path /ipfs/root/elem/... resolves, and returns the CID the last element
// names (root itself for no elements). It fetches through get only the
// folders on the way: one block per plain folder and, in a HAMT-sharded
// folder, only the shards on the name's hash path (murmur3-x64-64 of the
// name, log2(fanout) bits per level, as boxo's HAMT and Kubo look names
// up). The block named by the last element is not fetched. Every block is
// verified against its CID and decoded as strictly as Stat does.
//
// A name that is not there, or a path through something that is not a
// folder, gives an error wrapping ErrNoSuchEntry; a folder naming an
// entry twice (or a HAMT bucket used twice) one wrapping ErrMalformed.
func Resolve(ctx context.Context, root cid.Cid, elems []string, get Getter) (cid.Cid, error) {
	if len(elems) > maxPathElements {
		return cid.Undef, fmt.Errorf("%w: path of more than %d elements", ErrUnsafeName, maxPathElements)
	}
	w := newWalker(get, nil)
	cur := root
	for i, name := range elems {
		if err := CheckName(name); err != nil {
			return cid.Undef, err
		}
		if isRawCID(cur) {
			return cid.Undef, fmt.Errorf("%w: %q is a file, not a folder", ErrNoSuchEntry, strings.Join(elems[:i], "/"))
		}
		n, err := w.fetch(ctx, cur)
		if err != nil {
			return cid.Undef, err
		}
		var l Link
		var ok bool
		switch n.Kind {
		case KindDirectory:
			l, ok, err = dirLookup(n, name)
		case KindHAMTShard:
			l, ok, err = w.hamtLookup(ctx, n, name)
		default:
			return cid.Undef, fmt.Errorf("%w: %q is a %s, not a folder", ErrNoSuchEntry, strings.Join(elems[:i], "/"), n.Kind)
		}
		if err != nil {
			return cid.Undef, err
		}
		if !ok {
			return cid.Undef, fmt.Errorf("%w: %q", ErrNoSuchEntry, strings.Join(elems[:i+1], "/"))
		}
		cur = l.CID
	}
	return cur, nil
}

// dirLookup finds name among a plain folder's links.
func dirLookup(n *Node, name string) (Link, bool, error) {
	var found Link
	ok := false
	for _, l := range n.Links {
		if l.Name != name {
			continue
		}
		if ok {
			return Link{}, false, fmt.Errorf("%w: %w: %q", ErrMalformed, ErrDuplicateName, name)
		}
		found, ok = l, true
	}
	return found, ok, nil
}

// hamtLookup finds name in the HAMT whose top shard is n, fetching the
// sub-shards on the name's hash path only.
func (w *walker) hamtLookup(ctx context.Context, n *Node, name string) (Link, bool, error) {
	h := murmur3.New64()
	h.Write([]byte(name))
	hb := hashBits{b: h.Sum(nil)}
	for depth := 0; ; depth++ {
		if depth > maxWalkDepth {
			return Link{}, false, fmt.Errorf("%w: HAMT nested deeper than %d", ErrMalformed, maxWalkDepth)
		}
		bits := log2(n.Fanout) // Decode checks that Fanout is a power of two
		idx, ok := hb.next(bits)
		if !ok {
			return Link{}, false, fmt.Errorf("%w: HAMT deeper than the hash of %q allows", ErrMalformed, name)
		}
		prefix := fmt.Sprintf("%0*X", len(fmt.Sprintf("%X", n.Fanout-1)), idx)
		var bucket *Link
		for i := range n.Links {
			if strings.HasPrefix(n.Links[i].Name, prefix) {
				if bucket != nil {
					return Link{}, false, fmt.Errorf("%w: HAMT bucket %q used twice", ErrMalformed, prefix)
				}
				bucket = &n.Links[i]
			}
		}
		switch {
		case bucket == nil:
			return Link{}, false, nil
		case bucket.Name == prefix+name:
			return *bucket, true, nil
		case bucket.Name != prefix:
			return Link{}, false, nil // another name in this bucket
		}
		sub, err := w.fetch(ctx, bucket.CID)
		if err != nil {
			return Link{}, false, err
		}
		if sub.Kind != KindHAMTShard {
			return Link{}, false, fmt.Errorf("%w: HAMT bucket %q is a %s", ErrMalformed, prefix, sub.Kind)
		}
		n = sub
	}
}

func log2(v uint64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// hashBits reads a hash MSB first, a few bits at a time (boxo's HAMT
// hashBits).
type hashBits struct {
	b        []byte
	consumed int
}

// next returns the next n bits as an integer, or false when the hash has
// fewer left.
func (hb *hashBits) next(n int) (int, bool) {
	if hb.consumed+n > len(hb.b)*8 {
		return 0, false
	}
	out := 0
	for range n {
		bit := hb.b[hb.consumed/8] >> (7 - hb.consumed%8) & 1
		out = out<<1 | int(bit)
		hb.consumed++
	}
	return out, true
}
