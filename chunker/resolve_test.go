package chunker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
)

// countingGetter serves blocks from a map and counts what it is asked for.
type countingGetter struct {
	blocks map[cid.Cid][]byte
	asked  []cid.Cid
}

func (g *countingGetter) get(_ context.Context, c cid.Cid) ([]byte, error) {
	g.asked = append(g.asked, c)
	data, ok := g.blocks[c]
	if !ok {
		return nil, fmt.Errorf("%s: not in the test's blocks", c)
	}
	return data, nil
}

func addTree(t *testing.T, dir string) (cid.Cid, *countingGetter) {
	t.Helper()
	blocks := map[cid.Cid][]byte{}
	res, err := AddPath(context.Background(), dir, Options{}, &collectSink{blocks})
	if err != nil {
		t.Fatal(err)
	}
	return res.CID, &countingGetter{blocks: blocks}
}

func cidOfPath(t *testing.T, p string) cid.Cid {
	t.Helper()
	res, err := AddPath(context.Background(), p, Options{}, Discard)
	if err != nil {
		t.Fatal(err)
	}
	return res.CID
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []struct {
		path string
		size int
	}{{"a/one", 10}, {"b/sub/file.bin", 3<<20 + 5}, {"b/two", 100}, {"c/three", 1}} {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, randBytes(f.size, int64(f.size)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, g := addTree(t, dir)
	ctx := context.Background()
	for _, p := range []string{"", "a", "a/one", "b", "b/sub", "b/sub/file.bin", "/b/sub/", "c/three"} {
		elems, err := SplitPath(p)
		if err != nil {
			t.Fatalf("SplitPath(%q): %v", p, err)
		}
		g.asked = nil
		got, err := Resolve(ctx, root, elems, g.get)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", p, err)
		}
		want := cidOfPath(t, filepath.Join(dir, filepath.FromSlash(strings.Trim(p, "/"))))
		if !got.Equals(want) {
			t.Errorf("Resolve(%q) = %s, want %s", p, got, want)
		}
		// One block per folder on the way; the target is not fetched.
		if len(g.asked) != len(elems) {
			t.Errorf("Resolve(%q) fetched %d blocks, want %d", p, len(g.asked), len(elems))
		}
	}
	for _, p := range []string{"nope", "a/nope", "b/sub/file.bin/x", "a/one/x"} {
		elems, _ := SplitPath(p)
		_, err := Resolve(ctx, root, elems, g.get)
		if !errors.Is(err, ErrNoSuchEntry) {
			t.Errorf("Resolve(%q): %v, want ErrNoSuchEntry", p, err)
		}
	}
	for _, p := range []string{"..", "a/../b", "a//b", "./a", "a/.", "a\\b", "a\x00b"} {
		if _, err := SplitPath(p); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("SplitPath(%q): %v, want ErrUnsafeName", p, err)
		}
		if _, err := Resolve(ctx, root, strings.Split(p, "/"), g.get); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("Resolve(%q): %v, want ErrUnsafeName", p, err)
		}
	}
}

func TestResolveDuplicateName(t *testing.T) {
	blocks := map[cid.Cid][]byte{}
	leaf := mustRawCID(t, []byte("x"))
	dirData := appendVarintField(nil, 1, pbDirectory)
	data := encodeNode([]Link{{Name: "a", CID: leaf, Size: 1}, {Name: "a", CID: leaf, Size: 1}}, dirData)
	c, err := pbPrefix.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	blocks[c] = data
	g := &countingGetter{blocks: blocks}
	if _, err := Resolve(context.Background(), c, []string{"a"}, g.get); !errors.Is(err, ErrDuplicateName) {
		t.Fatalf("got %v, want ErrDuplicateName", err)
	}
}

func mustRawCID(t *testing.T, data []byte) cid.Cid {
	t.Helper()
	c, err := cid.V1Builder{Codec: cid.Raw, MhType: 0x12}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// makeShardedDir writes n small distinct files with long names, enough for
// the profile's HAMT threshold (256 KiB of links), and returns the names.
func makeShardedDir(t *testing.T, dir string, n int) []string {
	t.Helper()
	var names []string
	pad := strings.Repeat("x", 230) // long names: fewer files reach the threshold
	for i := range n {
		name := fmt.Sprintf("file-%05d-%s.txt", i, pad)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

func TestResolveHAMT(t *testing.T) {
	dir := t.TempDir()
	names := makeShardedDir(t, dir, 1000)
	root, g := addTree(t, dir)
	n, err := Decode(root, g.blocks[root])
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != KindHAMTShard {
		t.Fatalf("the folder is a %s, not a HAMT shard: the test needs more entries", n.Kind)
	}
	ctx := context.Background()
	maxFetched := 0
	for i, name := range names {
		g.asked = nil
		got, err := Resolve(ctx, root, []string{name}, g.get)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", name, err)
		}
		if i%97 == 0 { // the CID of the file itself, for a sample
			if want := cidOfPath(t, filepath.Join(dir, name)); !got.Equals(want) {
				t.Fatalf("Resolve(%q) = %s, want %s", name, got, want)
			}
		}
		maxFetched = max(maxFetched, len(g.asked))
	}
	// 1000 entries in 256-way shards: the top shard and at most a level or
	// two below it, never the whole folder (len(g.blocks) shards).
	if maxFetched > 3 || maxFetched >= len(g.blocks) {
		t.Fatalf("a lookup fetched up to %d blocks of the folder's %d", maxFetched, len(g.blocks))
	}
	t.Logf("%d entries in %d shard blocks; a lookup fetches at most %d", len(names), len(g.blocks), maxFetched)
	if _, err := Resolve(ctx, root, []string{"missing.txt"}, g.get); !errors.Is(err, ErrNoSuchEntry) {
		t.Fatalf("Resolve(missing): %v, want ErrNoSuchEntry", err)
	}
}

func TestHashBits(t *testing.T) {
	hb := hashBits{b: []byte{0xA5, 0x0F}}
	for _, want := range []struct{ n, v int }{{4, 0xA}, {2, 1}, {6, 0x10}, {4, 0xF}} {
		got, ok := hb.next(want.n)
		if !ok || got != want.v {
			t.Fatalf("next(%d) = %#x, %v; want %#x", want.n, got, ok, want.v)
		}
	}
	if _, ok := hb.next(1); ok {
		t.Fatal("read past the hash")
	}
}
