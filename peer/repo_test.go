package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

func openTestRepo(t testing.TB) *Repo {
	t.Helper()
	r, err := Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeRandom(t *testing.T, path string, size int, seed int64) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func TestInitKeepsIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	id1, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 {
		t.Fatalf("second init changed the peer ID: %s then %s", id1, id2)
	}
	st, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("identity key mode %v, want 0600", st.Mode().Perm())
	}
}

func TestOpenLockedRepo(t *testing.T) {
	r := openTestRepo(t)
	if _, err := Open(r.Dir); !errors.Is(err, ErrRepoLocked) {
		t.Fatalf("second Open of a repo in use: got %v, want ErrRepoLocked", err)
	}
}

func TestAddInPlace(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "data.bin")
	data := writeRandom(t, path, 8<<20+12345, 1)

	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := chunker.AddPath(ctx, path, chunker.Options{}, chunker.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !res.CID.Equals(want.CID) || res.Size != int64(len(data)) || res.Name != "data.bin" {
		t.Fatalf("Add = %+v, want CID %s size %d", res, want.CID, len(data))
	}
	if grown := dirSize(t, r.Dir); grown > int64(len(data))/100+(256<<10) {
		// pebble's fixed overhead (OPTIONS, MANIFEST) is a few KiB; the index
		// itself must stay far below 1% of the content.
		t.Errorf("repo is %d bytes for %d bytes of content: not indexed in place", grown, len(data))
	}
	got := readAll(t, r, res.CID)
	if !bytes.Equal(got, data) {
		t.Fatal("content read back from the repo differs from the file")
	}
	roots, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].State != StateComplete || roots[0].CID != res.CID.String() {
		t.Fatalf("ls = %+v, want one complete root %s", roots, res.CID)
	}
}

// readAll reassembles a file root from the repo alone, verifying every
// block.
func readAll(t *testing.T, r *Repo, root cid.Cid) []byte {
	t.Helper()
	return readFiles(t, r, root)[""]
}

// readFiles reassembles every file of a root from the repo alone, by path,
// verifying every block; repeats are copied from where they first appear.
func readFiles(t *testing.T, r *Repo, root cid.Cid) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{}
	err := chunker.Walk(ctx, root, r.store().Get, func(e chunker.Entry) error {
		if e.Kind != chunker.KindFile {
			return nil
		}
		var out []byte
		for _, s := range e.Spans {
			if !s.Leaf.Defined() {
				src := files[s.SrcPath]
				if s.SrcPath == e.Path {
					src = out
				}
				out = append(out, src[s.SrcOffset:s.SrcOffset+s.Size]...)
				continue
			}
			b, err := r.store().Get(ctx, s.Leaf)
			if err != nil {
				return err
			}
			out = append(out, b...)
		}
		files[e.Path] = out
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestChangedAndMissingFiles(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a.bin")
	b := filepath.Join(dir, "b.bin")
	writeRandom(t, a, 3<<20, 2)
	writeRandom(t, b, 3<<20, 3)
	ra, err := r.Add(ctx, a, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := r.Add(ctx, b, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Change one byte in a's second chunk, keeping its size; remove b.
	f, err := os.OpenFile(a, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff ^ 0x5a}, 1<<20+7)
	f.Close()
	os.Chtimes(a, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	os.Remove(b)

	states := map[string]string{}
	roots, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range roots {
		states[x.CID] = x.State
	}
	if states[ra.CID.String()] != StateChanged || states[rb.CID.String()] != StateMissing {
		t.Fatalf("states = %v, want %s changed and %s missing", states, ra.CID, rb.CID)
	}
	// The changed chunk is never returned as valid.
	var leaves []cid.Cid
	chunker.Leaves(ctx, ra.CID, r.store().Get, func(c cid.Cid) error { leaves = append(leaves, c); return nil })
	if len(leaves) != 3 {
		t.Fatalf("got %d leaves, want 3", len(leaves))
	}
	if _, err := r.store().Get(ctx, leaves[1]); !errors.Is(err, chunker.ErrHashMismatch) {
		t.Fatalf("Get of a changed leaf: err = %v, want ErrHashMismatch", err)
	}
	if _, err := r.store().Get(ctx, leaves[0]); err != nil {
		t.Fatalf("unchanged leaf: %v", err)
	}
}

func TestAddCopyAndRemove(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "c.bin")
	data := writeRandom(t, path, 2<<20+1, 4)
	res, err := r.Add(ctx, path, AddOptions{Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	if got := readAll(t, r, res.CID); !bytes.Equal(got, data) {
		t.Fatal("--copy content differs after the original was deleted")
	}

	keep := filepath.Join(t.TempDir(), "keep.bin")
	writeRandom(t, keep, 1<<20+5, 5)
	rk, err := r.Add(ctx, keep, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, rk.CID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("rm deleted the user's file: %v", err)
	}
	if ok, _ := r.store().Has(ctx, rk.CID); ok {
		t.Error("removed root is still served")
	}
	if err := r.Remove(ctx, rk.CID); !errors.Is(err, ErrNotShared) {
		t.Fatalf("second rm: %v, want ErrNotShared", err)
	}
	roots, _ := r.List(ctx)
	if len(roots) != 1 || roots[0].CID != res.CID.String() {
		t.Fatalf("after rm, ls = %+v", roots)
	}
}

func TestAddFolderInPlace(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string][]byte{
		"a.txt":       writeRandom(t, filepath.Join(dir, "a.txt"), 100, 6),
		"sub/b.bin":   writeRandom(t, filepath.Join(dir, "sub", "b.bin"), 2<<20+3, 7),
		"sub/c/d.bin": writeRandom(t, filepath.Join(dir, "sub", "c", "d.bin"), 0, 8),
	}
	res, err := r.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for path, got := range readFiles(t, r, res.CID) {
		if sha256.Sum256(got) != sha256.Sum256(files[path]) {
			t.Errorf("%s: content differs", path)
		}
		seen[path] = true
	}
	if len(seen) != len(files) {
		t.Fatalf("walked files %v, want %d", seen, len(files))
	}
}

// A file rewritten in place with its mtime put back (as cp -p, rsync -t
// and tar leave it) is still seen as changed: its ctime moved.
func TestChangedKeepingMtime(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "m.bin")
	writeRandom(t, path, 3<<20, 9)
	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a ctime tick apart on any filesystem clock
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("changed"), 1<<20)
	f.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	roots, err := r.List(ctx)
	if err != nil || len(roots) != 1 || roots[0].CID != res.CID.String() || roots[0].State != StateChanged {
		t.Fatalf("ls = %+v %v, want the root changed", roots, err)
	}
}
