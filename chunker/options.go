package chunker

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
)

// DefaultChunkSize is the unixfs-v1-2025 profile's chunk size (1 MiB).
const DefaultChunkSize = 1 << 20

// MaxChunkSize is the largest fixed chunk size accepted: 1 MiB, as Kubo's
// --chunker=size-N (boxo's ChunkSizeLimit).
const MaxChunkSize = 1 << 20

// MaxBlockSize bounds every block this package produces or accepts, and so
// every block on the wire: 2 MiB, the bitswap limit. Leaves are at most
// MaxChunkSize; internal file nodes at most 1024 links (~48 KiB);
// directories switch to HAMT shards past 256 KiB.
const MaxBlockSize = 2 << 20

// maxLinks is the most links a file DAG node has (unixfs-v1-2025).
const maxLinks = 1024

// Chunker names accepted in Options.Chunker.
const (
	ChunkerSize    = "size"
	ChunkerBuzhash = "buzhash"
)

// ErrUnsupportedFile is returned for sockets, devices, FIFOs and other
// files that have no UnixFS representation.
var ErrUnsupportedFile = errors.New("unsupported file type")

// Options configure how content is split and encoded. The zero value is the
// unixfs-v1-2025 profile.
type Options struct {
	// ChunkSize is the fixed chunk size in bytes; 0 means DefaultChunkSize.
	ChunkSize int `json:"chunk_size,omitempty"`
	// Chunker is "" or "size" (fixed-size chunks) or "buzhash"
	// (content-defined, Kubo's --chunker=buzhash).
	Chunker string `json:"chunker,omitempty"`
	// Hidden includes dot-files and dot-folders found inside folders.
	Hidden bool `json:"hidden,omitempty"`
}

// Validate reports a bad chunk size or chunker name.
func (o Options) Validate() error {
	switch o.Chunker {
	case "", ChunkerSize, ChunkerBuzhash:
	default:
		return fmt.Errorf("unknown chunker %q (want size or buzhash)", o.Chunker)
	}
	if o.ChunkSize < 0 || o.ChunkSize > MaxChunkSize {
		return fmt.Errorf("chunk size %d out of range (1 to %d bytes)", o.ChunkSize, MaxChunkSize)
	}
	return nil
}

func (o Options) chunkSize() int {
	if o.ChunkSize == 0 {
		return DefaultChunkSize
	}
	return o.ChunkSize
}

var (
	rawPrefix = cid.Prefix{Version: 1, Codec: uint64(multicodec.Raw), MhType: mh.SHA2_256, MhLength: -1}
	pbPrefix  = cid.Prefix{Version: 1, Codec: uint64(multicodec.DagPb), MhType: mh.SHA2_256, MhLength: -1}
)
