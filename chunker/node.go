package chunker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/boxo/verifcid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
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

// ErrWeakHash is returned by CheckCID, Verify and Decode for a CID whose
// multihash is not a full-length SHA2-256 digest (32 bytes) or an identity
// multihash of at most MaxIdentityDigestSize bytes: a truncated or weak
// hash would let a peer forge blocks. It wraps ErrMalformed, so
// errors.Is(err, ErrMalformed) holds for it as well.
var ErrWeakHash = fmt.Errorf("%w: weak or truncated hash", ErrMalformed)

// MaxIdentityDigestSize bounds the data an identity CID may inline, in
// bytes (boxo's verifcid default, as Kubo enforces).
const MaxIdentityDigestSize = verifcid.DefaultMaxIdentityDigestSize

// hashAllowlist is the verifcid allowlist of the hashes CheckCID accepts:
// SHA2-256 at its full 32 bytes, and identity up to MaxIdentityDigestSize.
type hashAllowlist struct{}

func (hashAllowlist) IsAllowed(code uint64) bool {
	return code == mh.SHA2_256 || code == mh.IDENTITY
}

func (hashAllowlist) MinDigestSize(code uint64) int {
	if code == mh.IDENTITY {
		return 0
	}
	return sha256.Size
}

func (hashAllowlist) MaxDigestSize(code uint64) int {
	if code == mh.IDENTITY {
		return MaxIdentityDigestSize
	}
	return sha256.Size
}

// CheckCID reports whether c is a CID this package can trust and decode:
// codec raw (0x55) or dag-pb (0x70), and a multihash that is full-length
// SHA2-256 or a short identity hash (see ErrWeakHash). It is meant for
// every CID that arrives from elsewhere (a peer's WANT or HELLO, a link
// inside a block) before it is looked up, fetched or trusted. The error
// wraps ErrWeakHash for a refused hash and ErrMalformed for any refusal.
func CheckCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("%w: undefined CID", ErrMalformed)
	}
	p := c.Prefix()
	switch multicodec.Code(p.Codec) {
	case multicodec.Raw, multicodec.DagPb:
	default:
		return fmt.Errorf("%w: %s: unsupported codec %s", ErrMalformed, c, multicodec.Code(p.Codec))
	}
	if err := verifcid.ValidateCid(hashAllowlist{}, c); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrWeakHash, c, err)
	}
	return nil
}

// Verify checks that c passes CheckCID and that data hashes to c, with c's
// own hash function. For an identity CID, data must equal the digest.
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	got, err := c.Prefix().Sum(data)
	if err != nil {
		// Only identity can fail here: data of another length than the
		// digest.
		return fmt.Errorf("%s: %w (%v)", c, ErrHashMismatch, err)
	}
	if !bytes.Equal(got.Hash(), c.Hash()) {
		return fmt.Errorf("%s: %w", c, ErrHashMismatch)
	}
	return nil
}

// Decode parses a raw or dag-pb/UnixFS block. It does not check the hash
// (see Verify), but every link of a dag-pb node must pass CheckCID
// (ErrWeakHash otherwise). dag-pb is decoded as strictly as
// go-codec-dagpb does it. It never panics and allocates in proportion to
// len(data) (at most ~20 MB for a block of MaxBlockSize).
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
