package chunker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"

	boxochunk "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
	"golang.org/x/sync/errgroup"
)

// Sink receives every block a build produces. Its methods are called from
// one goroutine, leaves in file order, files one after another.
type Sink interface {
	// Leaf is called once per raw leaf. path is the file's path as opened
	// (inside a folder: the folder argument joined with the path below
	// it); data is only valid during the call.
	Leaf(path string, offset int64, c cid.Cid, data []byte) error
	// Node is called for every dag-pb block: file internal nodes,
	// directories, HAMT shards and symlinks. data is only valid during the
	// call.
	Node(c cid.Cid, data []byte) error
	// File is called after the last leaf of each regular file, with its
	// root and size.
	File(path string, root cid.Cid, size int64) error
}

type discard struct{}

func (discard) Leaf(string, int64, cid.Cid, []byte) error { return nil }
func (discard) Node(cid.Cid, []byte) error                { return nil }
func (discard) File(string, cid.Cid, int64) error         { return nil }

// Discard is a Sink that keeps nothing (for computing CIDs only).
var Discard Sink = discard{}

// Result describes a built DAG.
type Result struct {
	CID  cid.Cid
	Name string
	// Size is the content bytes (for a folder: of all its files).
	Size int64
	// tsize is the root's cumulative block size (its link Tsize).
	tsize uint64
}

// splitter yields the chunks of a stream; next fills (part of) buf or
// returns a slice of its own, and io.EOF after the last chunk.
type splitter interface {
	next(buf []byte) ([]byte, error)
	bufSize() int
}

type fixedSplitter struct {
	r    io.Reader
	size int
}

func (s fixedSplitter) bufSize() int { return s.size }

func (s fixedSplitter) next(buf []byte) ([]byte, error) {
	n, err := io.ReadFull(s.r, buf[:s.size])
	switch {
	case err == io.ErrUnexpectedEOF:
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	return buf[:n], nil
}

// buzhashMax is boxo's largest buzhash chunk.
const buzhashMax = 512 << 10

type buzSplitter struct{ s boxochunk.Splitter }

func (s buzSplitter) bufSize() int { return buzhashMax }

func (s buzSplitter) next(buf []byte) ([]byte, error) {
	b, err := s.s.NextBytes()
	if err != nil {
		return nil, err
	}
	return append(buf[:0], b...), nil
}

func newSplitter(r io.Reader, opts Options) splitter {
	if opts.Chunker == ChunkerBuzhash {
		return buzSplitter{boxochunk.NewBuzhash(r)}
	}
	return fixedSplitter{r, opts.chunkSize()}
}

// leafJob is one chunk on its way through the hashing pipeline.
type leafJob struct {
	buf  *[]byte
	data []byte
	c    cid.Cid
	done chan struct{}
}

func rawCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	m, _ := mh.Encode(sum[:], mh.SHA2_256) // cannot fail for sha2-256
	return cid.NewCidV1(uint64(multicodec.Raw), m)
}

// AddReader builds the DAG of one file read from r. path is passed through
// to the Sink (and names the Result). It reads sequentially and hashes
// leaves on GOMAXPROCS goroutines:
//
//	read chunks ──► work ──► hash workers (N) ─┐
//	      └───────► order (same sequence) ─────┴─► Sink + DAG, in order
//
// At most 2N+2 chunks are in memory at once.
func AddReader(ctx context.Context, r io.Reader, path string, opts Options, s Sink) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	sp := newSplitter(r, opts)
	workers := runtime.GOMAXPROCS(0)
	inflight := 2*workers + 2
	pool := make(chan *[]byte, inflight)
	for range inflight {
		b := make([]byte, sp.bufSize())
		pool <- &b
	}
	work := make(chan *leafJob, inflight)
	order := make(chan *leafJob, inflight)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { // reader
		defer close(work)
		defer close(order)
		for first := true; ; first = false {
			var buf *[]byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				return ctx.Err()
			}
			data, err := sp.next(*buf)
			if err == io.EOF {
				if !first {
					return nil
				}
				data, err = (*buf)[:0], nil // an empty file is one empty leaf
			}
			if err != nil {
				return fmt.Errorf("reading %s: %w", path, err)
			}
			j := &leafJob{buf: buf, data: data, done: make(chan struct{})}
			for _, ch := range []chan *leafJob{work, order} {
				select {
				case ch <- j:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if len(data) == 0 {
				return nil
			}
		}
	})
	for range workers {
		g.Go(func() error {
			for j := range work {
				j.c = rawCID(j.data)
				close(j.done)
			}
			return nil
		})
	}
	fb := fileBuilder{sink: s}
	var size int64
	g.Go(func() error { // in-order consumer
		for j := range order {
			select {
			case <-j.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := s.Leaf(path, size, j.c, j.data); err != nil {
				return err
			}
			if err := fb.add(Link{CID: j.c, Size: uint64(len(j.data))}, uint64(len(j.data))); err != nil {
				return err
			}
			size += int64(len(j.data))
			pool <- j.buf
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	root, err := fb.finish()
	if err != nil {
		return Result{}, err
	}
	if err := s.File(path, root.CID, size); err != nil {
		return Result{}, err
	}
	return Result{CID: root.CID, Name: filepath.Base(path), Size: size, tsize: root.Size}, nil
}

// fileBuilder assembles the balanced layout bottom-up as leaves arrive:
// levels[i] holds the children of the open node at depth i+1. A full level
// is committed only when one more child arrives, so the result is exactly
// boxo's balanced.Layout: every node full but the last at each depth, all
// leaves at the same depth, and a single-leaf file is the leaf itself.
type fileBuilder struct {
	sink   Sink
	levels []level
	leaves int
	first  Link
}

type level struct {
	links []Link
	sizes []uint64
}

func (b *fileBuilder) add(l Link, contentSize uint64) error {
	b.leaves++
	if b.leaves == 1 {
		b.first = l
	}
	return b.push(0, l, contentSize)
}

func (b *fileBuilder) push(i int, l Link, size uint64) error {
	if i == len(b.levels) {
		b.levels = append(b.levels, level{})
	}
	if len(b.levels[i].links) == maxLinks {
		up, upSize, err := b.commit(i)
		if err != nil {
			return err
		}
		if err := b.push(i+1, up, upSize); err != nil {
			return err
		}
	}
	b.levels[i].links = append(b.levels[i].links, l)
	b.levels[i].sizes = append(b.levels[i].sizes, size)
	return nil
}

// commit encodes the open node at level i, hands it to the sink and
// empties the level.
func (b *fileBuilder) commit(i int) (Link, uint64, error) {
	lv := &b.levels[i]
	data := encodeNode(lv.links, encodeFileData(lv.sizes))
	c, err := pbPrefix.Sum(data)
	if err != nil {
		return Link{}, 0, err
	}
	if err := b.sink.Node(c, data); err != nil {
		return Link{}, 0, err
	}
	tsize := uint64(len(data))
	var size uint64
	for k, l := range lv.links {
		tsize += l.Size
		size += lv.sizes[k]
	}
	lv.links, lv.sizes = lv.links[:0], lv.sizes[:0]
	return Link{CID: c, Size: tsize}, size, nil
}

// finish commits the open nodes from the bottom up and returns the root.
func (b *fileBuilder) finish() (Link, error) {
	if b.leaves == 0 {
		return Link{}, errors.New("bug: file with no leaves")
	}
	if b.leaves == 1 {
		return b.first, nil
	}
	for i := 0; ; i++ {
		l, size, err := b.commit(i)
		if err != nil {
			return Link{}, err
		}
		if i == len(b.levels)-1 {
			return l, nil
		}
		if err := b.push(i+1, l, size); err != nil {
			return Link{}, err
		}
	}
}
