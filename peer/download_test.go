package peer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The leaf list a download hands its session is the order of the
// have-maps a seed sends: the DAG's distinct leaves by first appearance.
func TestDownloadLeavesInHaveMapOrder(t *testing.T) {
	n := startNode(t, NodeOptions{})
	root, _ := addFile(t, n, 8<<20, 256<<10)
	ctx := context.Background()
	want, err := n.Repo.store().Leaves(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	d, err := openDownload(n.Repo.store(), root, out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Open(ctx, out); err != nil {
		t.Fatal(err)
	}
	if got := d.leaves(); len(want) != 32 || !slices.Equal(got, want) {
		t.Fatalf("download's leaves (%d) are not the seed's have-map order (%d)", len(got), len(want))
	}
}

// A get killed after moving its result into place but before recording it
// finds the result there next time and records it as complete.
func TestKilledAfterRenameIsAdopted(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 3<<20, 0) // the default profile: get recognises it in place
	b := startNode(t, NodeOptions{}, a)
	out := filepath.Join(t.TempDir(), "r.bin")
	ctx := context.Background()
	if _, err := b.Get(ctx, root, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	// What the index says if the process died right after the rename.
	if err := b.Repo.index.putRoot(ctx, root, rootRecord{Name: "r.bin", Path: out, Temp: tempPath(out), State: StatePartial}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, root, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	roots, err := b.Repo.List(ctx)
	if err != nil || len(roots) != 1 || roots[0].State != StateComplete || roots[0].Path != out {
		t.Fatalf("ls after the second get: %+v %v", roots, err)
	}
	if got := readAll(t, b.Repo, root); string(got) != string(data) {
		t.Fatal("the adopted result is not served as it is")
	}
}

// A root already held is got again to other places: the download's
// records are its own, not those of the copies elsewhere (a shorter name
// beside the first copy used to panic, another folder to fail flushing
// "../first").
func TestGetHeldRootToOtherPlaces(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 3<<20, 0)
	b := startNode(t, NodeOptions{}, a)
	ctx := context.Background()
	dir := t.TempDir()
	for _, out := range []string{filepath.Join(dir, "a-long-name.bin"), filepath.Join(dir, "b"), filepath.Join(t.TempDir(), "c")} {
		if _, err := b.Get(ctx, root, GetOptions{Out: out}); err != nil {
			t.Fatalf("get to %s: %v", out, err)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes (%v), not the content", out, len(got), err)
		}
	}
	if got := readAll(t, b.Repo, root); !bytes.Equal(got, data) {
		t.Fatal("the root is not served as it is")
	}
}

// A file of one block (its root is a raw leaf) is got into place and
// served from there, from a third node too, and its bytes are not kept a
// second time in the repo's datastore.
func TestGetOneBlockFile(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 1<<20, 0)
	if !isRaw(root) {
		t.Fatalf("a 1 MiB file's root %s is not a raw leaf", root)
	}
	b := startNode(t, NodeOptions{}, a)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "one.bin")
	if _, err := b.Get(ctx, root, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s: %d bytes (%v), not the content", out, len(got), err)
	}
	if ok, err := b.Repo.ds.Has(ctx, blockKey(root)); ok || err != nil {
		t.Fatalf("the repo's datastore holds the block too (%v)", err)
	}
	if got := readAll(t, b.Repo, root); !bytes.Equal(got, data) {
		t.Fatal("the root is not served from the file")
	}
	a.Close() // b alone holds it now
	c := startNode(t, NodeOptions{}, b)
	out2 := filepath.Join(t.TempDir(), "two.bin")
	if _, err := c.Get(ctx, root, GetOptions{Out: out2}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out2); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s from the node that got it: %d bytes (%v), not the content", out2, len(got), err)
	}
}
