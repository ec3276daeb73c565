package chunker

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
)

// Kind is the kind of a DAG node.
type Kind uint8

// Node kinds. The values are stable (they may be stored or sent).
const (
	KindRaw       Kind = 0 // a raw leaf: file bytes
	KindFile      Kind = 1 // a UnixFS file node over leaves or other file nodes
	KindDirectory Kind = 2 // a UnixFS directory
	KindHAMTShard Kind = 3 // a UnixFS HAMT directory shard
	KindSymlink   Kind = 4 // a UnixFS symlink
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindRaw:
		return "raw"
	case KindFile:
		return "file"
	case KindDirectory:
		return "directory"
	case KindHAMTShard:
		return "hamt-shard"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Link is a dag-pb link.
type Link struct {
	Name string
	CID  cid.Cid
	// Size is the link's Tsize: the bytes of the whole sub-DAG.
	Size uint64
}

// Node is a decoded block.
type Node struct {
	Kind  Kind
	Links []Link
	// FileSize is the content size under a file node (or a raw leaf's size).
	FileSize uint64
	// BlockSizes are the content sizes under each link of a file node.
	BlockSizes []uint64
	// Data is a raw leaf's bytes, a file node's inline data, or a
	// symlink's target.
	Data []byte
	// Fanout is a HAMT shard's fanout.
	Fanout uint64
}

// ErrHashMismatch is returned by Verify when data does not hash to the CID.
var ErrHashMismatch = errors.New("block does not match its CID")

// Verify checks that data hashes to c, with c's own hash function.
func Verify(c cid.Cid, data []byte) error {
	got, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("hashing block for %s: %w", c, err)
	}
	if !bytes.Equal(got.Hash(), c.Hash()) {
		return fmt.Errorf("%s: %w", c, ErrHashMismatch)
	}
	return nil
}

// Decode parses a raw or dag-pb/UnixFS block. It does not check the hash
// (see Verify). It never panics and allocates in proportion to len(data).
func Decode(c cid.Cid, data []byte) (*Node, error) {
	if len(data) > MaxBlockSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(data), MaxBlockSize)
	}
	switch multicodec.Code(c.Prefix().Codec) {
	case multicodec.Raw:
		return &Node{Kind: KindRaw, FileSize: uint64(len(data)), Data: data}, nil
	case multicodec.DagPb:
	default:
		return nil, fmt.Errorf("%w: unsupported codec %s", ErrMalformed, multicodec.Code(c.Prefix().Codec))
	}
	links, data, err := decodePB(data)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, fmt.Errorf("%w: dag-pb node without UnixFS data", ErrMalformed)
	}
	u, err := decodeUnixFS(data, len(links))
	if err != nil {
		return nil, err
	}
	n := &Node{Links: links, Data: u.data, FileSize: u.fileSize, BlockSizes: u.blockSizes, Fanout: u.fanout}
	switch u.typ {
	case pbFile, pbRaw:
		n.Kind = KindFile
		if len(u.blockSizes) != len(links) {
			return nil, fmt.Errorf("%w: file node with %d links and %d blocksizes", ErrMalformed, len(links), len(u.blockSizes))
		}
		var sum uint64
		for _, s := range u.blockSizes {
			if sum+s < sum {
				return nil, fmt.Errorf("%w: file size overflows", ErrMalformed)
			}
			sum += s
		}
		if sum+uint64(len(u.data)) != u.fileSize && !(len(links) == 0 && u.fileSize == 0) {
			return nil, fmt.Errorf("%w: file size %d, parts add up to %d", ErrMalformed, u.fileSize, sum+uint64(len(u.data)))
		}
	case pbDirectory:
		n.Kind = KindDirectory
	case pbHAMTShard:
		n.Kind = KindHAMTShard
		if u.fanout == 0 || u.fanout > 1024 || u.fanout&(u.fanout-1) != 0 {
			return nil, fmt.Errorf("%w: HAMT fanout %d", ErrMalformed, u.fanout)
		}
		if u.hashType != 0x22 { // murmur3-x64-64
			return nil, fmt.Errorf("%w: HAMT hash type %#x", ErrMalformed, u.hashType)
		}
	case pbSymlink:
		n.Kind = KindSymlink
	default:
		return nil, fmt.Errorf("%w: unsupported UnixFS type %d", ErrMalformed, u.typ)
	}
	return n, nil
}
