package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

// fetched sums what a get received from every peer.
func fetched(res GetResult) uint64 {
	var n uint64
	for _, b := range res.From {
		n += b
	}
	return n
}

// pathCost is what a selective get of elems in root must fetch from n's
// repo: the folder blocks Resolve reads on the way, and every block under
// the target (each distinct one once).
func pathCost(t *testing.T, n *Node, root cid.Cid, elems []string) (cid.Cid, uint64) {
	t.Helper()
	ctx := context.Background()
	st := n.Repo.store()
	var bytes uint64
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		data, err := st.Get(ctx, c)
		bytes += uint64(len(data))
		return data, err
	}
	target, err := chunker.Resolve(ctx, root, elems, get)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[cid.Cid]bool{}
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		if seen[c] {
			return
		}
		seen[c] = true
		data, err := st.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		bytes += uint64(len(data))
		if c.Prefix().Codec == cid.Raw {
			return
		}
		nd, err := chunker.Decode(c, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range nd.Links {
			walk(l.CID)
		}
	}
	walk(target)
	return target, bytes
}

// TestGetPath: a folder of three subfolders on a seed; get ROOT/b/file.bin
// fetches that file and the two folder blocks above it, nothing more; get
// ROOT/b the subfolder alone; a missing path and an unsafe one fail.
func TestGetPath(t *testing.T) {
	a := startNode(t, NodeOptions{})
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string][]byte{}
	for i, rel := range []string{"a/one.bin", "a/two.bin", "b/file.bin", "b/other.bin", "b/deep/x.txt", "c/three.bin"} {
		size := 1<<20 + 1000*i
		if rel == "b/file.bin" {
			size = 2<<20 + 77 // three leaves and a file node
		}
		files[rel] = writeRandom(t, filepath.Join(dir, filepath.FromSlash(rel)), size, int64(i+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	res, err := a.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := res.CID
	if err := a.DHT.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}
	var whole uint64
	for _, d := range files {
		whole += uint64(len(d))
	}

	// One file, two folders down.
	d := startNode(t, NodeOptions{}, a)
	out := filepath.Join(t.TempDir(), "file.bin")
	fileCID, want := pathCost(t, a, root, []string{"b", "file.bin"})
	got, err := d.Get(ctx, root, GetOptions{Path: "b/file.bin", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(out); err != nil || !bytes.Equal(data, files["b/file.bin"]) {
		t.Fatalf("b/file.bin: bytes differ (err %v)", err)
	}
	if got.CID != fileCID.String() || got.Bytes != uint64(len(files["b/file.bin"])) {
		t.Fatalf("result %+v, want CID %s and %d bytes", got, fileCID, len(files["b/file.bin"]))
	}
	if f := fetched(got); f != want {
		t.Fatalf("get ROOT/b/file.bin fetched %d bytes; the file's blocks and the folders on the path are %d", f, want)
	}
	t.Logf("ROOT/b/file.bin: fetched %d bytes (file %d); the whole folder holds %d", fetched(got), len(files["b/file.bin"]), whole)
	roots, err := d.Repo.List(ctx)
	if err != nil || len(roots) != 1 || roots[0].CID != fileCID.String() || roots[0].Name != "file.bin" || roots[0].State != StateComplete {
		t.Fatalf("ls after a selective get: %+v (%v), want the file's CID alone, complete", roots, err)
	}

	// A subfolder, from a fresh node.
	e := startNode(t, NodeOptions{}, a)
	outB := filepath.Join(t.TempDir(), "b")
	bCID, want := pathCost(t, a, root, []string{"b"})
	got, err = e.Get(ctx, root, GetOptions{Path: "/b/", Out: outB})
	if err != nil {
		t.Fatal(err)
	}
	var sizeB uint64
	for rel, data := range files {
		sub, ok := strings.CutPrefix(rel, "b/")
		if !ok {
			if _, err := os.Stat(filepath.Join(outB, filepath.FromSlash(rel))); err == nil {
				t.Errorf("%s was fetched with b", rel)
			}
			continue
		}
		sizeB += uint64(len(data))
		if got, err := os.ReadFile(filepath.Join(outB, filepath.FromSlash(sub))); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: bytes differ (err %v)", rel, err)
		}
	}
	if got.CID != bCID.String() || fetched(got) != want {
		t.Fatalf("get ROOT/b: CID %s, fetched %d bytes; want %s, %d", got.CID, fetched(got), bCID, want)
	}
	t.Logf("ROOT/b: fetched %d bytes (content %d)", fetched(got), sizeB)

	// The whole folder, for comparison; its subfolder b is now also held
	// by d and e, which answer for it.
	f := startNode(t, NodeOptions{}, a)
	got, err = f.Get(ctx, root, GetOptions{Out: filepath.Join(t.TempDir(), "tree")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ROOT: fetched %d bytes (content %d)", fetched(got), whole)

	// Missing and unsafe paths.
	for _, p := range []string{"nope", "b/nope", "b/file.bin/x"} {
		_, err := d.Get(ctx, root, GetOptions{Path: p, Out: filepath.Join(t.TempDir(), "x"), Timeout: 5 * time.Second})
		wantMsg := fmt.Sprintf("no such file or folder in %s: %q", root, p)
		if !errors.Is(err, chunker.ErrNoSuchEntry) || err.Error() != wantMsg {
			t.Errorf("get %s: %v; want %s", p, err, wantMsg)
		}
		if IsUsage(err) {
			t.Errorf("get %s: a missing path is no usage error", p)
		}
	}
	for _, p := range []string{"..", "b/../a", "b//file.bin", "./b"} {
		_, err := d.Get(ctx, root, GetOptions{Path: p, Out: filepath.Join(t.TempDir(), "x")})
		if !errors.Is(err, ErrBadOptions) || !errors.Is(err, chunker.ErrUnsafeName) || !IsUsage(err) {
			t.Errorf("get %q: %v; want a usage error (unsafe name)", p, err)
		}
	}
}

// TestGetPathHAMT: in a folder large enough to be HAMT-sharded, get
// ROOT/name reads only the shards on the name's hash path.
func TestGetPathHAMT(t *testing.T) {
	a := startNode(t, NodeOptions{})
	dir := filepath.Join(t.TempDir(), "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 230) // long names: fewer files reach the HAMT threshold
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("f%04d-%s", i, pad)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	res, err := a.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := res.CID
	data, err := a.Repo.store().Get(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if nd, err := chunker.Decode(root, data); err != nil || nd.Kind != chunker.KindHAMTShard {
		t.Fatalf("the folder is not HAMT-sharded (%v): the test needs more entries", err)
	}
	var structure uint64 // every shard of the folder
	var walk func(c cid.Cid)
	walk = func(c cid.Cid) {
		data, _ := a.Repo.store().Get(ctx, c)
		structure += uint64(len(data))
		nd, _ := chunker.Decode(c, data)
		for _, l := range nd.Links {
			if l.CID.Prefix().Codec != cid.Raw {
				walk(l.CID)
			}
		}
	}
	walk(root)
	if err := a.DHT.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}

	d := startNode(t, NodeOptions{}, a)
	for _, i := range []int{0, 517, 999} {
		name := names[i]
		target, want := pathCost(t, a, root, []string{name})
		out := filepath.Join(t.TempDir(), "f")
		got, err := d.Get(ctx, root, GetOptions{Path: name, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		if got.CID != target.String() {
			t.Fatalf("got %s, want %s", got.CID, target)
		}
		if b, err := os.ReadFile(out); err != nil || string(b) != fmt.Sprintf("file %d\n", i) {
			t.Fatalf("entry %d: content %q (%v)", i, b, err)
		}
		// The seed's blocks already fetched by an earlier lookup are not
		// fetched again: at most what this path costs.
		if f := fetched(got); f > want || f >= structure/4 {
			t.Fatalf("get ROOT/entry %d fetched %d bytes; its path costs %d, the folder's shards %d", i, f, want, structure)
		}
		t.Logf("ROOT/entry %d: fetched %d bytes; path cost %d; the folder's %d entries take %d bytes of shards", i, fetched(got), want, len(names), structure)
	}
}
