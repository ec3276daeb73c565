package chunker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// fileNode builds a file node over parts of the given sizes by hand, as a
// hostile peer could.
func fileNode(t *testing.T, blocks map[cid.Cid][]byte, parts []Link, sizes []uint64) cid.Cid {
	t.Helper()
	data := encodeNode(parts, encodeFileData(sizes))
	c, err := pbPrefix.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	blocks[c] = data
	return c
}

// bomb is a file of fanout^depth repeats of one leaf from depth+1 blocks:
// each level links fanout times to the level below.
func bomb(t *testing.T, blocks map[cid.Cid][]byte, leaf []byte, fanout, depth int) (cid.Cid, uint64) {
	t.Helper()
	c := rawCID(leaf)
	blocks[c] = leaf
	size := uint64(len(leaf))
	for range depth {
		parts := make([]Link, fanout)
		sizes := make([]uint64, fanout)
		for i := range parts {
			parts[i], sizes[i] = Link{CID: c, Size: size}, size
		}
		c = fileNode(t, blocks, parts, sizes)
		size *= uint64(fanout)
	}
	return c, size
}

func TestStatOfRepeatedSubtreesIsCheap(t *testing.T) {
	blocks := map[cid.Cid][]byte{}
	// 1024^3 repeats of a 1 MiB leaf: a file of 1 PiB from 4 blocks.
	root, size := bomb(t, blocks, make([]byte, 1<<20), 1024, 3)
	gets := 0
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { gets++; return blocks[c], nil }
	start := time.Now()
	st, err := Stat(context.Background(), root, get)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Entries != 1 {
		t.Fatalf("Stat = %+v, want size %d and 1 entry", st, size)
	}
	if gets != 3 {
		t.Fatalf("Stat fetched %d blocks, want each of the 3 dag-pb blocks once", gets)
	}
	var spans int
	err = Walk(context.Background(), root, get, func(e Entry) error { spans += len(e.Spans); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// One leaf, then repeats: 1023 per level.
	if spans != 1+3*1023 {
		t.Fatalf("%d spans, want %d", spans, 1+3*1023)
	}
	t.Logf("Stat and Walk of a 1 PiB claim from 4 blocks: %v", time.Since(start))
}

func TestSpansRebuildRepeats(t *testing.T) {
	blocks := map[cid.Cid][]byte{}
	leafA, leafB := []byte("aaaa"), []byte("bbbbbb")
	a, b := rawCID(leafA), rawCID(leafB)
	blocks[a], blocks[b] = leafA, leafB
	inner := fileNode(t, blocks, []Link{{CID: a, Size: 4}, {CID: b, Size: 6}, {CID: a, Size: 4}}, []uint64{4, 6, 4})
	root := fileNode(t, blocks, []Link{{CID: inner, Size: 14}, {CID: b, Size: 6}, {CID: inner, Size: 14}}, []uint64{14, 6, 14})
	dir, ddata := dirNode(t, Link{Name: "x", CID: root, Size: 1}, Link{Name: "y", CID: root, Size: 1}, Link{Name: "z", CID: a, Size: 4})
	blocks[dir] = ddata
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
	var entries []Entry
	if err := Walk(context.Background(), dir, get, func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	files := rebuild(t, entries, map[cid.Cid][]byte{a: leafA, b: leafB})
	want := "aaaabbbbbbaaaa" + "bbbbbb" + "aaaabbbbbbaaaa"
	if string(files["x"]) != want || string(files["y"]) != want || string(files["z"]) != "aaaa" {
		t.Fatalf("rebuilt x=%q y=%q z=%q", files["x"], files["y"], files["z"])
	}
	var distinct []cid.Cid
	Leaves(context.Background(), dir, get, func(c cid.Cid) error { distinct = append(distinct, c); return nil })
	if len(distinct) != 2 || distinct[0] != a || distinct[1] != b {
		t.Fatalf("Leaves = %v, want [a b]", distinct)
	}
	st, _ := Stat(context.Background(), dir, get)
	if st.Size != 2*34+4 || st.Entries != 4 {
		t.Fatalf("Stat = %+v", st)
	}
}

func TestDuplicateNamesRefused(t *testing.T) {
	blocks := map[cid.Cid][]byte{}
	leaf := rawCID([]byte("x"))
	blocks[leaf] = []byte("x")
	sub, sdata := dirNode(t, Link{Name: "keep.txt", CID: leaf, Size: 1})
	blocks[sub] = sdata
	root, rdata := dirNode(t, Link{Name: "a", CID: sub, Size: 10}, Link{Name: "a", CID: leaf, Size: 1})
	blocks[root] = rdata
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
	called := false
	err := Walk(context.Background(), root, get, func(Entry) error { called = true; return nil })
	if !errors.Is(err, ErrDuplicateName) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrDuplicateName and ErrMalformed", err)
	}
	if called {
		t.Fatal("Walk reported entries of a malformed DAG")
	}
}

func TestWalkHonoursCancellation(t *testing.T) {
	blocks := map[cid.Cid][]byte{}
	root, _ := bomb(t, blocks, []byte("z"), 8, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
	if _, err := Stat(ctx, root, get); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stat on a cancelled context: %v", err)
	}
	if err := Walk(ctx, root, get, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk on a cancelled context: %v", err)
	}
}
