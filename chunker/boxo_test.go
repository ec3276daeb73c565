package chunker

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bsrv "github.com/ipfs/boxo/blockservice"
	bstore "github.com/ipfs/boxo/blockstore"
	boxochunk "github.com/ipfs/boxo/chunker"
	offline "github.com/ipfs/boxo/exchange/offline"
	mdag "github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	ihelper "github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
)

// boxoFile imports data with boxo's own balanced importer and the
// unixfs-v1-2025 parameters: the reference our builder must match.
func boxoFile(t *testing.T, dag ipld.DAGService, data []byte, opts Options) cid.Cid {
	t.Helper()
	var spl boxochunk.Splitter
	if opts.Chunker == ChunkerBuzhash {
		spl = boxochunk.NewBuzhash(bytes.NewReader(data))
	} else {
		spl = boxochunk.NewSizeSplitter(bytes.NewReader(data), int64(opts.chunkSize()))
	}
	p := ihelper.DagBuilderParams{Dagserv: dag, RawLeaves: true, Maxlinks: maxLinks, CidBuilder: pbPrefix}
	db, err := p.New(spl)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := balanced.Layout(db)
	if err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

func newDAG() ipld.DAGService {
	return mdag.NewDAGService(bsrv.New(bstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore())), offline.Exchange(nil)))
}

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestFilesMatchBoxo(t *testing.T) {
	cases := []struct {
		size int
		opts Options
	}{
		{0, Options{}},
		{1, Options{}},
		{1 << 20, Options{}},
		{1<<20 + 1, Options{}},
		{5<<20 + 12345, Options{}},
		{3 << 20, Options{ChunkSize: 1024}},       // two levels
		{1024*1024 + 1, Options{ChunkSize: 1024}}, // 1025 leaves: just past one full node
		{1024 * 1024, Options{ChunkSize: 1024}},   // exactly one full node
		{2<<20 + 7, Options{ChunkSize: 256}},      // 8193 leaves: three levels
		{4<<20 + 3, Options{Chunker: ChunkerBuzhash}},
		{300000, Options{Chunker: ChunkerBuzhash}},
		{777777, Options{ChunkSize: 262144}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d-%d-%s", c.size, c.opts.ChunkSize, c.opts.Chunker), func(t *testing.T) {
			data := randBytes(c.size, int64(c.size))
			if c.opts.Chunker == ChunkerBuzhash {
				// Repetitive content gives buzhash boundaries of every kind.
				copy(data[len(data)/2:], data[:len(data)/2])
			}
			got, err := AddReader(context.Background(), bytes.NewReader(data), "f", c.opts, Discard)
			if err != nil {
				t.Fatal(err)
			}
			if want := boxoFile(t, newDAG(), data, c.opts); !got.CID.Equals(want) {
				t.Fatalf("CID %s, boxo's importer gives %s", got.CID, want)
			}
			if got.Size != int64(c.size) {
				t.Fatalf("size %d, want %d", got.Size, c.size)
			}
		})
	}
}

// boxoDir builds a folder's root with boxo alone (files by its importer,
// folders by its directory builder), with the profile's settings.
func boxoDir(t *testing.T, dag ipld.DAGService, path string, hidden bool) cid.Cid {
	t.Helper()
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := uio.NewDirectory(dag, uio.WithCidBuilder(pbPrefix), uio.WithSizeEstimationMode(uio.SizeEstimationBlock), uio.WithMaxHAMTFanout(256))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range entries {
		if !hidden && strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		var c cid.Cid
		if e.IsDir() {
			c = boxoDir(t, dag, p, hidden)
		} else {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			c = boxoFile(t, dag, data, Options{})
		}
		nd, err := dag.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := dir.AddChild(ctx, e.Name(), nd); err != nil {
			t.Fatal(err)
		}
	}
	nd, err := dir.GetNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := dag.Add(ctx, nd); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

func TestFoldersMatchBoxo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  int
		nameLn int
	}{
		{"small", 20, 10},
		{"just under the HAMT threshold", 1700, 100},
		{"HAMT-sharded", 2000, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i := range tc.files {
				name := fmt.Sprintf("%06d-%s", i, strings.Repeat("n", tc.nameLn-7))
				if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprint(i)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755)
			os.WriteFile(filepath.Join(dir, "sub", "deeper", "x"), randBytes(2<<20+5, 1), 0o644)
			os.WriteFile(filepath.Join(dir, ".hidden"), []byte("h"), 0o644)
			blocks := map[cid.Cid][]byte{}
			got, err := AddPath(context.Background(), dir, Options{}, &collectSink{blocks: blocks})
			if err != nil {
				t.Fatal(err)
			}
			if want := boxoDir(t, newDAG(), dir, false); !got.CID.Equals(want) {
				t.Fatalf("CID %s, boxo gives %s", got.CID, want)
			}
			// Walk finds every file back, through the shards if any.
			n := 0
			get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
			err = Walk(context.Background(), got.CID, get, func(e Entry) error {
				if e.Kind == KindFile {
					n++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.files+1 {
				t.Fatalf("walk found %d files, want %d", n, tc.files+1)
			}
			root, _ := Decode(got.CID, blocks[got.CID])
			sharded := root.Kind == KindHAMTShard
			if sharded != (tc.files == 2000) {
				t.Fatalf("root is %s for %d entries", root.Kind, tc.files)
			}
		})
	}
}
