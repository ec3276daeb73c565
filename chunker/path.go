package chunker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
)

// AddPath builds the DAG of a regular file or a folder (recursively). A
// symlink given as path itself is followed; symlinks inside a folder become
// UnixFS symlink nodes, as in Kubo. Dot-entries inside folders are skipped
// unless opts.Hidden. Sockets, devices and FIFOs give an error wrapping
// ErrUnsupportedFile; a missing path wraps fs.ErrNotExist and an
// unreadable one fs.ErrPermission.
func AddPath(ctx context.Context, path string, opts Options, s Sink) (Result, error) {
	if err := opts.Validate(); err != nil {
		return Result{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return Result{}, err
	}
	if st.IsDir() {
		l, size, err := addDir(ctx, path, opts, s)
		if err != nil {
			return Result{}, err
		}
		return Result{CID: l.CID, Name: filepath.Base(path), Size: size}, nil
	}
	if !st.Mode().IsRegular() {
		return Result{}, unsupported(path, st.Mode())
	}
	return addFile(ctx, path, opts, s)
}

func unsupported(path string, m fs.FileMode) error {
	kind := "special file"
	switch {
	case m&fs.ModeSocket != 0:
		kind = "socket"
	case m&fs.ModeDevice != 0:
		kind = "device"
	case m&fs.ModeNamedPipe != 0:
		kind = "named pipe"
	}
	return fmt.Errorf("%s is a %s: %w", path, kind, ErrUnsupportedFile)
}

// Opener is a Sink that wants each regular file's FileInfo as fstat gives
// it once the file is open, before its first byte is read: the identity
// of the bytes about to be hashed, if nothing changes them meanwhile.
type Opener interface {
	Opened(path string, fi os.FileInfo) error
}

func addFile(ctx context.Context, path string, opts Options, s Sink) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	if o, ok := s.(Opener); ok {
		fi, err := f.Stat()
		if err != nil {
			return Result{}, err
		}
		if err := o.Opened(path, fi); err != nil {
			return Result{}, err
		}
	}
	return AddReader(ctx, f, path, opts, s)
}

// addDir builds a folder's directory node (HAMT-sharded past the profile's
// threshold, by boxo's directory builder) and returns its link and the
// content bytes below it.
func addDir(ctx context.Context, path string, opts Options, s Sink) (Link, int64, error) {
	entries, err := os.ReadDir(path) // sorted by name, as Kubo adds them
	if err != nil {
		return Link{}, 0, err
	}
	dag := &sinkDAG{sink: s, seen: map[cid.Cid]bool{}}
	dir, err := uio.NewDirectory(dag,
		uio.WithCidBuilder(pbPrefix),
		uio.WithSizeEstimationMode(uio.SizeEstimationBlock),
		uio.WithMaxHAMTFanout(256),
	)
	if err != nil {
		return Link{}, 0, err
	}
	dir.SetHAMTShardingSize(256 << 10)
	var total int64
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return Link{}, 0, err
		}
		name := e.Name()
		if !opts.Hidden && strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(path, name)
		var child Link
		switch t := e.Type(); {
		case t.IsDir():
			l, size, err := addDir(ctx, p, opts, s)
			if err != nil {
				return Link{}, 0, err
			}
			child, total = l, total+size
		case t.IsRegular():
			res, err := addFile(ctx, p, opts, s)
			if err != nil {
				return Link{}, 0, err
			}
			child, total = Link{CID: res.CID, Size: res.tsize}, total+res.Size
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return Link{}, 0, err
			}
			data := encodeNode(nil, encodeSymlinkData(target))
			c, err := pbPrefix.Sum(data)
			if err != nil {
				return Link{}, 0, err
			}
			if err := s.Node(c, data); err != nil {
				return Link{}, 0, err
			}
			child = Link{CID: c, Size: uint64(len(data))}
		default:
			return Link{}, 0, unsupported(p, t)
		}
		if err := dir.AddChild(ctx, name, linkNode{child}); err != nil {
			return Link{}, 0, fmt.Errorf("adding %s to its folder: %w", p, err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		return Link{}, 0, err
	}
	if err := dag.Add(ctx, nd); err != nil {
		return Link{}, 0, err
	}
	size, err := nd.Size()
	if err != nil {
		return Link{}, 0, err
	}
	return Link{CID: nd.Cid(), Size: size}, total, nil
}

// sinkDAG is the DAGService boxo's directory builder writes to: every node
// goes to the Sink once. Nothing is ever read back.
type sinkDAG struct {
	sink Sink
	seen map[cid.Cid]bool
}

func (d *sinkDAG) Get(_ context.Context, c cid.Cid) (format.Node, error) {
	return nil, format.ErrNotFound{Cid: c}
}

func (d *sinkDAG) GetMany(context.Context, []cid.Cid) <-chan *format.NodeOption {
	ch := make(chan *format.NodeOption)
	close(ch)
	return ch
}

func (d *sinkDAG) Add(_ context.Context, n format.Node) error {
	if _, ok := n.(linkNode); ok {
		return nil // a child built earlier: already in the Sink
	}
	if d.seen[n.Cid()] {
		return nil
	}
	d.seen[n.Cid()] = true
	return d.sink.Node(n.Cid(), n.RawData())
}

func (d *sinkDAG) AddMany(ctx context.Context, ns []format.Node) error {
	for _, n := range ns {
		if err := d.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func (d *sinkDAG) Remove(context.Context, cid.Cid) error       { return nil }
func (d *sinkDAG) RemoveMany(context.Context, []cid.Cid) error { return nil }

// linkNode stands for a child already built: the directory builder needs
// only its CID and cumulative size.
type linkNode struct{ l Link }

var errLinkNode = errors.New("bug: linkNode has no content")

func (n linkNode) RawData() []byte                                      { return nil }
func (n linkNode) Cid() cid.Cid                                         { return n.l.CID }
func (n linkNode) String() string                                       { return n.l.CID.String() }
func (n linkNode) Loggable() map[string]any                             { return map[string]any{"cid": n.l.CID} }
func (n linkNode) Resolve([]string) (any, []string, error)              { return nil, nil, errLinkNode }
func (n linkNode) Tree(string, int) []string                            { return nil }
func (n linkNode) ResolveLink([]string) (*format.Link, []string, error) { return nil, nil, errLinkNode }
func (n linkNode) Copy() format.Node                                    { return n }
func (n linkNode) Links() []*format.Link                                { return nil }
func (n linkNode) Stat() (*format.NodeStat, error)                      { return &format.NodeStat{}, nil }
func (n linkNode) Size() (uint64, error)                                { return n.l.Size, nil }

var _ blocks.Block = linkNode{}
