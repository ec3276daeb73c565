package peer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// TestServedLeafRehashedOnlyWhenChanged: a leaf of a file add verified is
// served without a new hash while the file's identity stays as it was;
// once the file is overwritten in place (same size, mtime put back, as cp
// -p leaves it), the changed leaf is refused and the others are hashed
// again before they are served.
func TestServedLeafRehashedOnlyWhenChanged(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "f.bin")
	data := writeRandom(t, path, 3<<20, 5)
	time.Sleep(identityMargin + 100*time.Millisecond) // a file written a while before add
	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := r.store()
	leaves, err := st.Leaves(ctx, res.CID)
	if err != nil || len(leaves) != 3 {
		t.Fatalf("leaves: %v %v", leaves, err)
	}
	for i, c := range leaves {
		got, err := st.Get(ctx, c)
		if err != nil || !bytes.Equal(got, data[i<<20:(i+1)<<20]) {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	if n := st.trust.skipped.Load(); n != 3 {
		t.Fatalf("%d of 3 leaves of an unchanged file served without a new hash, want 3", n)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed"), 1<<20+17); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, leaves[1]); err == nil {
		t.Fatalf("changed leaf served (%d bytes)", len(got))
	}
	for _, i := range []int{0, 2} {
		if got, err := st.Get(ctx, leaves[i]); err != nil || !bytes.Equal(got, data[i<<20:(i+1)<<20]) {
			t.Fatalf("unchanged leaf %d of a changed file: %v", i, err)
		}
	}
	if n := st.trust.skipped.Load(); n != 3 {
		t.Fatalf("%d leaves served without a new hash after the change, want none", n-3)
	}
}

// TestLeafTrustedOnlyOnceSettled: a file changed just before add (its
// ctime too recent to vouch for its bytes) has its leaves hashed when
// served; once its ctime is old enough, a leaf the seed has hashed is
// served again without a hash, until the file changes.
func TestLeafTrustedOnlyOnceSettled(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "f.bin")
	data := writeRandom(t, path, 1<<20, 6)
	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := r.store()
	get := func() error {
		got, err := st.Get(ctx, res.CID) // a single-leaf file: its root is the leaf
		if err == nil && !bytes.Equal(got, data) {
			t.Fatal("wrong bytes served")
		}
		return err
	}
	for range 2 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.trust.skipped.Load(); n != 0 {
		t.Fatalf("%d reads of a file changed just before add served without a hash", n)
	}
	time.Sleep(identityMargin + 100*time.Millisecond)
	for range 2 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.trust.skipped.Load(); n != 1 {
		t.Fatalf("%d reads without a hash once settled, want 1 (the second)", n)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("x"), 100)
	f.Close()
	if err := get(); err == nil {
		t.Fatal("changed leaf served")
	}
}

// TestLeavesOfARawRoot: a one-leaf file is its own leaf list, answered
// from the index without reading the file (a seed answers it for every
// remote's HELLO); a raw CID this repo lacks is not found.
func TestLeavesOfARawRoot(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "one.bin")
	writeRandom(t, path, 1<<20, 6)
	time.Sleep(identityMargin + 100*time.Millisecond)
	res, err := r.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := r.store()
	leaves, err := st.Leaves(ctx, res.CID)
	if err != nil || len(leaves) != 1 || !leaves[0].Equals(res.CID) {
		t.Fatalf("Leaves(%s) = %v, %v; want the root alone", res.CID, leaves, err)
	}
	if n := st.trust.skipped.Load(); n != 0 {
		t.Fatalf("Leaves read the file (%d reads)", n)
	}
	other, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}.Sum([]byte("not in this repo"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Leaves(ctx, other); !errors.Is(err, ErrBlockNotFound) {
		t.Fatalf("Leaves of a raw CID not held: %v, want ErrBlockNotFound", err)
	}
}
