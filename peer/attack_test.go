package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/peer/peertest"
	"github.com/p2pshare/p2pshare/transfer"
	"github.com/p2pshare/p2pshare/transfer/transfertest"
)

// Attacks by a stranger who serves crafted DAGs over the real transfer
// protocol: each builds its blocks by hand, serves them from a
// transfertest.Seed on a loopback host, and runs a real node's Get.

// craft builds DAG blocks into a transfertest.Store as a hostile peer
// would: any shape, any names, any order.
type craft struct {
	t  *testing.T
	st *transfertest.Store
}

func newCraft(t *testing.T) *craft { return &craft{t, transfertest.NewStore()} }

// link is one link of a crafted node.
type link struct {
	name string
	c    cid.Cid
	size uint64 // a file part's content size; for folders the Tsize
}

func (k *craft) node(data []byte, links []link) cid.Cid {
	k.t.Helper()
	nd := merkledag.NodeWithData(data)
	if err := nd.SetCidBuilder(cid.V1Builder{Codec: cid.DagProtobuf, MhType: mh.SHA2_256}); err != nil {
		k.t.Fatal(err)
	}
	fl := make([]*format.Link, len(links))
	for i, l := range links {
		fl[i] = &format.Link{Name: l.name, Cid: l.c, Size: l.size}
	}
	nd.SetLinks(fl)
	k.st.Set(nd.Cid(), nd.RawData())
	return nd.Cid()
}

func (k *craft) leaf(data []byte) cid.Cid { return k.st.Add(cid.Raw, data) }

// file builds a file node over parts (their sizes are the blocksizes).
func (k *craft) file(parts ...link) cid.Cid {
	k.t.Helper()
	fs := unixfs.NewFSNode(unixfs.TFile)
	for _, p := range parts {
		fs.AddBlockSize(p.size)
	}
	data, err := fs.GetBytes()
	if err != nil {
		k.t.Fatal(err)
	}
	return k.node(data, parts)
}

func (k *craft) dir(entries ...link) cid.Cid { return k.node(unixfs.FolderPBData(), entries) }

func (k *craft) symlink(target string) cid.Cid {
	k.t.Helper()
	data, err := unixfs.SymlinkData(target)
	if err != nil {
		k.t.Fatal(err)
	}
	return k.node(data, nil)
}

// serve starts a hostile seed holding the crafted blocks for root and a
// downloader connected to it.
func (k *craft) serve(root cid.Cid, opts ...transfer.Option) *Node {
	k.t.Helper()
	var leaves []cid.Cid
	// A malformed DAG has no leaf list to give: the seed then claims none.
	chunker.Leaves(context.Background(), root, k.st.Get, func(c cid.Cid) error { leaves = append(leaves, c); return nil })
	k.st.SetLeaves(root, leaves)
	seed := transfertest.NewSeed(k.t, k.st, opts...)
	d := startNode(k.t, NodeOptions{})
	peertest.Connect(k.t, d.Host, seed.Host)
	return d
}

func hostileGet(t *testing.T, d *Node, root cid.Cid, out string) (GetResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return d.Get(ctx, root, GetOptions{Out: out, Timeout: 20 * time.Second})
}

// entries lists what a folder holds, so a test can show nothing appeared.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestAttackDuplicateNameSymlinkOutside(t *testing.T) {
	victim := t.TempDir()
	keep := filepath.Join(victim, "keep.txt")
	if err := os.WriteFile(keep, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := newCraft(t)
	// A folder "a" that holds a symlink keep.txt, then a second entry "a"
	// that is a symlink to the victim's folder: written in order, the
	// second "a" would turn a/keep.txt into the victim's file.
	inner := k.dir(link{name: "keep.txt", c: k.symlink("pwned"), size: 10})
	for _, target := range []string{victim, "../../" + filepath.Base(victim)} {
		root := k.dir(link{name: "a", c: inner, size: 50}, link{name: "a", c: k.symlink(target), size: 10})
		d := k.serve(root)
		outDir := t.TempDir()
		_, err := hostileGet(t, d, root, filepath.Join(outDir, "out"))
		if !errors.Is(err, chunker.ErrDuplicateName) {
			t.Fatalf("target %q: get err = %v, want a duplicate-name refusal", target, err)
		}
		if got := entries(t, outDir); len(got) != 0 {
			t.Errorf("target %q: the refused download left %v", target, got)
		}
	}
	fi, err := os.Lstat(keep)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("victim's keep.txt is gone or replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(keep); string(b) != "precious" {
		t.Fatalf("victim's keep.txt now holds %q", b)
	}
}

func TestAttackDuplicateFileNames(t *testing.T) {
	k := newCraft(t)
	one, two := []byte("first file"), []byte("second, longer file")
	root := k.dir(
		link{name: "f", c: k.leaf(one), size: uint64(len(one))},
		link{name: "f", c: k.leaf(two), size: uint64(len(two))},
	)
	d := k.serve(root)
	outDir := t.TempDir()
	if _, err := hostileGet(t, d, root, filepath.Join(outDir, "out")); !errors.Is(err, chunker.ErrDuplicateName) {
		t.Fatalf("get err = %v, want a duplicate-name refusal", err)
	}
	if got := entries(t, outDir); len(got) != 0 {
		t.Errorf("the refused download left %v", got)
	}
}

func TestAttackSymlinksRecreatedNotFollowed(t *testing.T) {
	victim := t.TempDir()
	k := newCraft(t)
	body := []byte("a regular file")
	// Symlinks that point outside, and entries that sort after them: the
	// files must be written beside the links, never through them.
	root := k.dir(
		link{name: "a-up", c: k.symlink("../../elsewhere"), size: 20},
		link{name: "b-abs", c: k.symlink(victim), size: 20},
		link{name: "c.txt", c: k.leaf(body), size: uint64(len(body))},
	)
	d := k.serve(root)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := hostileGet(t, d, root, out); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a-up": "../../elsewhere", "b-abs": victim} {
		if got, err := os.Readlink(filepath.Join(out, name)); err != nil || got != want {
			t.Errorf("%s: link to %q (%v), want %q as the DAG gives it", name, got, err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, "c.txt")); !bytes.Equal(b, body) {
		t.Errorf("c.txt = %q", b)
	}
	if got := entries(t, victim); len(got) != 0 {
		t.Errorf("the victim's folder gained %v", got)
	}
}

// interrupted runs a get of root that is cancelled once some bytes are in.
func interrupted(t *testing.T, d *Node, root cid.Cid, out string, after uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cctx, stop := context.WithCancel(ctx)
	_, err := d.Get(cctx, root, GetOptions{Out: out, Interval: 20 * time.Millisecond, Progress: func(p GetProgress) {
		if p.BytesDone >= after {
			stop()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted get: err = %v, want context.Canceled", err)
	}
}

func TestAttackSymlinkPlantedInPartialDownload(t *testing.T) {
	k := newCraft(t)
	var parts []link
	for i := range 16 {
		b := bytes.Repeat([]byte{byte(i)}, 256<<10)
		parts = append(parts, link{c: k.leaf(b), size: uint64(len(b))})
	}
	root := k.dir(link{name: "sub", c: k.dir(link{name: "f.bin", c: k.file(parts...), size: 4 << 20}), size: 4 << 20})
	d := k.serve(root, transfer.WithMaxUpload(2<<20))
	out := filepath.Join(t.TempDir(), "out")
	for _, plant := range []struct{ at, victim string }{
		{"sub/f.bin", "victim.bin"}, // the partial file becomes a link to the victim's file
		{"sub", ""},                 // the partial folder becomes a link to the victim's folder
	} {
		interrupted(t, d, root, out, 512<<10)
		victimDir := t.TempDir()
		victim := filepath.Join(victimDir, plant.victim)
		if plant.victim != "" {
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		at := filepath.Join(tempPath(out), filepath.FromSlash(plant.at))
		if err := os.RemoveAll(at); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, at); err != nil {
			t.Fatal(err)
		}
		if _, err := hostileGet(t, d, root, out); !errors.Is(err, ErrUnsafeOutput) {
			t.Fatalf("resume over a planted symlink at %s: err = %v, want ErrUnsafeOutput", plant.at, err)
		}
		if plant.victim != "" {
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("victim's file now holds %d bytes", len(b))
			}
		} else if got := entries(t, victimDir); len(got) != 0 {
			t.Fatalf("victim's folder gained %v", got)
		}
		if _, err := os.Lstat(out); !os.IsNotExist(err) {
			t.Fatalf("a refused download appeared under its final name: %v", err)
		}
		os.RemoveAll(tempPath(out)) // the user clears it; a fresh get starts over
	}
}

// bomb is a file of fanout^depth repeats of one leaf, from depth+1 blocks.
func (k *craft) bomb(leaf []byte, fanout, depth int) (cid.Cid, uint64) {
	c, size := k.leaf(leaf), uint64(len(leaf))
	for range depth {
		parts := make([]link, fanout)
		for i := range parts {
			parts[i] = link{c: c, size: size}
		}
		c, size = k.file(parts...), size*uint64(fanout)
	}
	return c, size
}

func TestAttackDAGClaimsMoreThanTheDisk(t *testing.T) {
	k := newCraft(t)
	// 4096 x 4096 links to one 1 MiB leaf: 16 TiB claimed from 3 blocks.
	root, size := k.bomb(bytes.Repeat([]byte{7}, 1<<20), 4096, 2)
	d := k.serve(root)
	outDir := t.TempDir()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := hostileGet(t, d, root, filepath.Join(outDir, "big"))
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "not enough space: needs 16.0 TiB") {
		t.Fatalf("get of a %d-byte claim: err = %v, want not enough space", size, err)
	}
	if got := entries(t, outDir); len(got) != 0 {
		t.Errorf("the refused download left %v", got)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("16 TiB claim refused in %v, %d MiB allocated meanwhile: %v", took, alloc>>20, err)
	if alloc > 256<<20 {
		t.Errorf("refusing the claim allocated %d MiB: memory follows leaf occurrences", alloc>>20)
	}
}

func TestAttackRepeatsThatFitAreCopied(t *testing.T) {
	k := newCraft(t)
	a, b := bytes.Repeat([]byte{'a'}, 64<<10), bytes.Repeat([]byte{'b'}, 32<<10)
	la, lb := link{c: k.leaf(a), size: uint64(len(a))}, link{c: k.leaf(b), size: uint64(len(b))}
	inner := link{c: k.file(la, lb, la), size: 160 << 10}
	var parts []link
	var want []byte
	for i := range 100 {
		if i%3 == 0 {
			parts = append(parts, lb)
			want = append(want, b...)
		} else {
			parts = append(parts, inner)
			want = append(want, a...)
			want = append(want, b...)
			want = append(want, a...)
		}
	}
	file := k.file(parts...)
	root := k.dir(link{name: "x", c: file, size: 1}, link{name: "y", c: file, size: 1})
	d := k.serve(root)
	out := filepath.Join(t.TempDir(), "out")
	res, err := hostileGet(t, d, root, out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y"} {
		got, _ := os.ReadFile(filepath.Join(out, name))
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("%s: %d bytes that differ from the DAG's %d", name, len(got), len(want))
		}
	}
	var fetched uint64
	for _, v := range res.From {
		fetched += v
	}
	// What was fetched: the two leaves once, and a few KiB of structure.
	if fetched > uint64(len(a)+len(b))+16<<10 || res.Bytes != 2*uint64(len(want)) {
		t.Fatalf("fetched %d bytes for 2 distinct leaves of %d; result says %d bytes", fetched, len(a)+len(b), res.Bytes)
	}
}

func TestResumeReverifiesDamagedPartial(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 8<<20, 256<<10)
	b := startNode(t, NodeOptions{MaxDownload: 4 << 20}, a)
	out := filepath.Join(t.TempDir(), "r.bin")
	interrupted(t, b, root, out, 2<<20)
	// Damage what the first run recorded as done.
	f, err := os.OpenFile(tempPath(out), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), 256<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	resumeAndCheck(t, context.Background(), b, root, out, data)
}

func TestAttackWeakHashes(t *testing.T) {
	body := []byte("bytes a peer could swap for others with the same short hash")
	cases := map[string]func(k *craft) cid.Cid{
		"leaf under sha2-256 cut to 4 bytes": func(k *craft) cid.Cid {
			c := transfertest.Sum(cid.Raw, mh.SHA2_256, 4, body)
			k.st.Set(c, body)
			return k.dir(link{name: "f", c: k.file(link{c: c, size: uint64(len(body))}), size: 100})
		},
		"leaf under md5": func(k *craft) cid.Cid {
			c := transfertest.Sum(cid.Raw, mh.MD5, -1, body)
			k.st.Set(c, body)
			return k.dir(link{name: "f", c: c, size: uint64(len(body))})
		},
		"file node under sha2-256 cut to 4 bytes": func(k *craft) cid.Cid {
			good := k.file(link{c: k.leaf(body), size: uint64(len(body))})
			data, _ := k.st.Get(context.Background(), good)
			c := transfertest.Sum(cid.DagProtobuf, mh.SHA2_256, 4, data)
			k.st.Set(c, data)
			return k.dir(link{name: "f", c: c, size: 100})
		},
		"root under sha2-256 cut to 4 bytes": func(k *craft) cid.Cid {
			good := k.dir(link{name: "f", c: k.leaf(body), size: uint64(len(body))})
			data, _ := k.st.Get(context.Background(), good)
			c := transfertest.Sum(cid.DagProtobuf, mh.SHA2_256, 4, data)
			k.st.Set(c, data)
			return c
		},
	}
	for name, build := range cases {
		t.Run(name, func(t *testing.T) {
			k := newCraft(t)
			root := build(k)
			d := k.serve(root)
			outDir := t.TempDir()
			_, err := hostileGet(t, d, root, filepath.Join(outDir, "out"))
			if !errors.Is(err, chunker.ErrWeakHash) {
				t.Fatalf("get err = %v, want the weak hash refused", err)
			}
			if got := entries(t, outDir); len(got) != 0 {
				t.Errorf("the refused download left %v", got)
			}
		})
	}
}

func TestAttackLeafClaimedAtTwoSizes(t *testing.T) {
	k := newCraft(t)
	// A leaf L first appears at its true size; its repeats are copied from
	// there, so a repeat claimed longer would copy what follows L in "a"
	// (or zeros), one claimed shorter would cut it: bytes not the DAG's.
	l, secret := k.leaf([]byte("0123456789")), k.leaf([]byte("next bytes"))
	a := link{name: "a", c: k.file(link{c: l, size: 10}, link{c: secret, size: 10}), size: 100}
	for name, repeat := range map[string]link{
		"file part claimed longer":  {name: "b", c: k.file(link{c: l, size: 20}), size: 100},
		"file part claimed shorter": {name: "b", c: k.file(link{c: l, size: 4}), size: 100},
		"raw entry claimed longer":  {name: "b", c: l, size: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			root := k.dir(a, repeat)
			d := k.serve(root)
			outDir := t.TempDir()
			_, err := hostileGet(t, d, root, filepath.Join(outDir, "out"))
			if !errors.Is(err, chunker.ErrMalformed) {
				t.Fatalf("get err = %v, want the DAG refused as malformed", err)
			}
			if got := entries(t, outDir); len(got) != 0 {
				t.Errorf("the refused download left %v", got)
			}
		})
	}
}

func TestAttackPathLongerThanTheSystemTakes(t *testing.T) {
	k := newCraft(t)
	// 30 folders of 250-byte names: each name is legal, the path (7.5 KB)
	// is not. Created one name at a time beneath the output folder it
	// could be written, but not recorded, served or even Lstat-ed by its
	// full path: get used to fail after moving it into place.
	c := k.dir(link{name: "f", c: k.leaf([]byte("deep")), size: 4})
	for range 30 {
		c = k.dir(link{name: strings.Repeat("d", 250), c: c, size: 1})
	}
	d := k.serve(c)
	outDir := t.TempDir()
	t.Cleanup(func() { os.RemoveAll(outDir) })
	if _, err := hostileGet(t, d, c, filepath.Join(outDir, "out")); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("get err = %v, want ErrPathTooLong", err)
	}
	if got := entries(t, outDir); len(got) != 0 {
		t.Errorf("the refused download left %v", got)
	}
}

func TestAttackSymlinkRootNotFollowedOnTheNextGet(t *testing.T) {
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "big"), []byte("hashing this means following the link"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := newCraft(t)
	// A root that is a link to a folder of the user's (or to /): the next
	// get of it to the same place used to hash everything it points at
	// (a minute of /usr here) to see whether the result was there already.
	root := k.symlink(victim)
	d := k.serve(root)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := hostileGet(t, d, root, out); err != nil {
		t.Fatal(err)
	}
	if _, err := hostileGet(t, d, root, out); err != nil {
		t.Fatalf("the same get again: %v, want the link recognised as the result", err)
	}
	// Killed between moving the link into place and recording it: adopted
	// as it is, the folder it points at not indexed.
	ctx := context.Background()
	if err := d.Repo.index.putRoot(ctx, root, rootRecord{Name: "out", Path: out, Temp: tempPath(out), State: StatePartial}); err != nil {
		t.Fatal(err)
	}
	if _, err := hostileGet(t, d, root, out); err != nil {
		t.Fatal(err)
	}
	roots, err := d.Repo.List(ctx)
	if err != nil || len(roots) != 1 || roots[0].CID != root.String() || roots[0].State != StateComplete {
		t.Fatalf("ls: %+v %v, want only the link's root, complete", roots, err)
	}
}

func TestAttackAnotherDAGsPartialNotResumed(t *testing.T) {
	k := newCraft(t)
	var parts []link
	var body []byte
	for i := range 16 {
		b := bytes.Repeat([]byte{byte(i)}, 32<<10)
		parts = append(parts, link{c: k.leaf(b), size: uint64(len(b))})
		body = append(body, b...)
	}
	want := k.file(parts...)
	root := k.dir(link{name: "f.bin", c: want, size: 512 << 10})
	// Another DAG got to the same output takes the partial folder over;
	// the first get, resumed, must not keep what that one put there.
	other := k.dir(link{name: "f.bin", c: k.file(parts[8:]...), size: 1}, link{name: "planted", c: want, size: 1})
	d := k.serve(root, transfer.WithMaxUpload(2<<20))
	var leaves []cid.Cid
	chunker.Leaves(context.Background(), other, k.st.Get, func(c cid.Cid) error { leaves = append(leaves, c); return nil })
	k.st.SetLeaves(other, leaves)
	out := filepath.Join(t.TempDir(), "out")
	interrupted(t, d, root, out, 64<<10)
	interrupted(t, d, other, out, 64<<10)
	if _, err := hostileGet(t, d, root, out); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, out); len(got) != 1 || got[0] != "f.bin" {
		t.Fatalf("the result holds %v, want only the DAG's f.bin", got)
	}
	got, _ := os.ReadFile(filepath.Join(out, "f.bin"))
	if !bytes.Equal(got, body) {
		t.Fatalf("f.bin: %d bytes that are not the DAG's", len(got))
	}
}

func TestManyFilesAreProgressNotAStall(t *testing.T) {
	k := newCraft(t)
	// 1500 empty files from 3 blocks: making them is local work that
	// moves no bytes; it must not count as a stall (100k of them took
	// 73 s here, over the default 60 s timeout).
	empty := k.leaf(nil)
	var ents, subs []link
	for i := range 750 {
		ents = append(ents, link{name: fmt.Sprintf("f%04d", i), c: empty})
	}
	inner := k.dir(ents...)
	for i := range 2 {
		subs = append(subs, link{name: fmt.Sprint(i), c: inner, size: 1})
	}
	root := k.dir(subs...)
	d := k.serve(root)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := d.Get(ctx, root, GetOptions{Out: out, Timeout: 300 * time.Millisecond}); err != nil {
		t.Fatalf("get after %v: %v", time.Since(start), err)
	}
	if es, err := os.ReadDir(filepath.Join(out, "1")); err != nil || len(es) != 750 {
		t.Fatalf("out/1 holds %d entries (%v)", len(es), err)
	}
	t.Logf("1500 empty files in %v", time.Since(start))
}

// syncBuffer is a bytes.Buffer safe for the node's goroutines to log to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBanLoggedAndCounted: a node that bans a peer for a corrupt block
// logs it at info with the peer, the root and the reason, and counts it in
// p2pshare_peers_banned_total by reason; the download completes from an
// honest peer.
func TestBanLoggedAndCounted(t *testing.T) {
	k := newCraft(t)
	var parts []link
	for range 8 {
		b := make([]byte, 64<<10)
		rand.Read(b)
		parts = append(parts, link{c: k.leaf(b), size: uint64(len(b))})
	}
	root := k.file(parts...)
	var leaves []cid.Cid
	for _, p := range parts {
		leaves = append(leaves, p.c)
	}
	k.st.SetLeaves(root, leaves)
	bad := transfertest.NewHostile(t, k.st, transfertest.Corrupt, 0)
	// Slow (160 KiB/s: 3 s), so the bad peer is asked too.
	good := transfertest.NewSeed(t, k.st, transfer.WithMaxUpload(160<<10))
	var logs syncBuffer
	d := startNode(t, NodeOptions{Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := d.Get(ctx, root, GetOptions{Out: filepath.Join(t.TempDir(), "out"), Peers: []libp2ppeer.AddrInfo{peertest.Info(bad.Host), peertest.Info(good.Host)}}); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var ev struct {
			Level, Msg, Peer, Reason, Detail string
			Root                             json.RawMessage // a CID, as cid.Cid encodes itself
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Msg != "peer banned" {
			continue
		}
		t.Logf("log: %s", line)
		found = true
		if ev.Level != "INFO" || ev.Peer != bad.Host.ID().String() || !strings.Contains(string(ev.Root), root.String()) || ev.Reason != "block does not match its CID" || ev.Detail == "" {
			t.Errorf("ban logged as %+v, want at INFO, peer %s, root %s, the reason and a detail", ev, bad.Host.ID(), root)
		}
	}
	if !found {
		t.Fatalf("no ban in the node's log:\n%s", logs.String())
	}
	srv := httptest.NewServer(d.MetricsHandler())
	defer srv.Close()
	m := scrape(t, srv.URL)
	if got := m[`p2pshare_peers_banned_total{reason="bad_block"}`]; got != 1 {
		t.Errorf(`p2pshare_peers_banned_total{reason="bad_block"} = %v, want 1`, got)
	}
}
