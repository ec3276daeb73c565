package peer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/chunker"
)

var loopback = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}

// startNode runs a node on a fresh repo, listening on loopback, joining
// through boot.
func startNode(t *testing.T, opts NodeOptions, boot ...*Node) *Node {
	t.Helper()
	r := openTestRepo(t)
	opts.Listen = loopback
	for _, b := range boot {
		opts.Bootstrap = append(opts.Bootstrap, libp2ppeer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func addFile(t *testing.T, n *Node, size int, chunk int) (cid.Cid, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.bin")
	data := writeRandom(t, path, size, int64(size))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Add(ctx, path, AddOptions{Options: chunker.Options{ChunkSize: chunk}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.DHT.Provide(ctx, res.CID); err != nil {
		t.Fatal(err)
	}
	return res.CID, data
}

func TestGetFromSeveralProviders(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 6<<20+77, 128<<10)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// b and c fetch from a and so become providers themselves.
	var helpers []*Node
	for range 2 {
		h := startNode(t, NodeOptions{}, a)
		out := filepath.Join(t.TempDir(), "copy.bin")
		if _, err := h.Get(ctx, root, GetOptions{Out: out}); err != nil {
			t.Fatal(err)
		}
		if err := h.DHT.Provide(ctx, root); err != nil {
			t.Fatal(err)
		}
		helpers = append(helpers, h)
	}
	d := startNode(t, NodeOptions{}, a)
	out := filepath.Join(t.TempDir(), "final.bin")
	res, err := d.Get(ctx, root, GetOptions{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("downloaded file differs from the original")
	}
	if len(res.From) < 2 {
		t.Errorf("download drew on %d peers (%v); want several of the 3 providers", len(res.From), res.From)
	}
	var sum uint64
	for _, v := range res.From {
		sum += v
	}
	if sum < uint64(len(data)) {
		t.Errorf("bytes from peers %d < file size %d", sum, len(data))
	}
	if _, err := os.Stat(tempPath(out)); !os.IsNotExist(err) {
		t.Errorf("temporary download file left behind: %v", err)
	}
	// The downloader now serves what it fetched, from where it lies.
	roots, _ := d.Repo.List(ctx)
	if len(roots) != 1 || roots[0].State != StateComplete || roots[0].Path != out {
		t.Fatalf("downloader's ls = %+v", roots)
	}
	if got := readAll(t, d.Repo, root); !bytes.Equal(got, data) {
		t.Fatal("downloader serves different content")
	}
}

func TestGetResumes(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 8<<20, 256<<10)
	b := startNode(t, NodeOptions{MaxDownload: 4 << 20}, a)
	out := filepath.Join(t.TempDir(), "r.bin")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cctx, stop := context.WithCancel(ctx)
	_, err := b.Get(cctx, root, GetOptions{Out: out, Interval: 20 * time.Millisecond, Progress: func(p GetProgress) {
		if p.BytesDone >= 2<<20 {
			stop()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted get: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("an incomplete download appeared under its final name")
	}
	resumeAndCheck(t, ctx, b, root, out, data)
}

func TestGetNoProviders(t *testing.T) {
	a := startNode(t, NodeOptions{})
	b := startNode(t, NodeOptions{}, a)
	c, _ := cid.Decode("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := b.Get(ctx, c, GetOptions{Out: filepath.Join(t.TempDir(), "x"), Timeout: 2 * time.Second})
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("err = %v, want ErrNoProviders", err)
	}
}

func TestGetFolder(t *testing.T) {
	a := startNode(t, NodeOptions{})
	dir := filepath.Join(t.TempDir(), "tree")
	want := map[string][]byte{
		"x.bin":     writeRandom(t, filepath.Join(dir, "x.bin"), 300000, 11),
		"y/z.bin":   writeRandom(t, filepath.Join(dir, "y", "z.bin"), 1<<20+9, 12),
		"y/w/e.txt": writeRandom(t, filepath.Join(dir, "y", "w", "e.txt"), 0, 13),
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := a.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DHT.Provide(ctx, res.CID); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, NodeOptions{}, a)
	out := filepath.Join(t.TempDir(), "restored")
	if _, err := b.Get(ctx, res.CID, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	for rel, data := range want {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: restored content differs (err %v)", rel, err)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "empty")); err != nil || !st.IsDir() {
		t.Errorf("empty folder not restored: %v", err)
	}
	// An existing different file is not overwritten without Force.
	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, []byte("mine"), 0o644)
	if _, err := b.Get(ctx, res.CID, GetOptions{Out: other}); !errors.Is(err, ErrExists) {
		t.Fatalf("get over an existing file: %v, want ErrExists", err)
	}
	if got, _ := os.ReadFile(other); string(got) != "mine" {
		t.Fatal("existing file was overwritten")
	}
}

// TestGetEveryPeerVanishes: the only provider goes away mid-download; get
// fails with ErrStalled after its timeout, keeps what it verified, and a
// later get from another provider fetches only the rest.
func TestGetEveryPeerVanishes(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 8<<20, 256<<10)
	b := startNode(t, NodeOptions{MaxDownload: 4 << 20}, a)
	out := filepath.Join(t.TempDir(), "v.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var once sync.Once
	_, err := b.Get(ctx, root, GetOptions{Out: out, Timeout: 2 * time.Second, Interval: 20 * time.Millisecond, Progress: func(p GetProgress) {
		if p.BytesDone >= 2<<20 {
			once.Do(func() { a.Close() })
		}
	}})
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("err = %v, want ErrStalled", err)
	}
	roots, _ := b.Repo.List(ctx)
	if len(roots) != 1 || roots[0].State != StatePartial {
		t.Fatalf("ls after the failure: %+v, want one partial root", roots)
	}
	// Another provider appears: the download resumes.
	c := startNode(t, NodeOptions{})
	src := filepath.Join(t.TempDir(), "src.bin")
	os.WriteFile(src, data, 0o644)
	if _, err := c.Add(ctx, src, AddOptions{Options: chunker.Options{ChunkSize: 256 << 10}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Host.Connect(ctx, libp2ppeer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := c.DHT.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}
	resumeAndCheck(t, ctx, b, root, out, data)
}

// resumeAndCheck reruns an interrupted get: it must complete, match data,
// and fetch less than the whole file (what was verified before is kept).
func resumeAndCheck(t *testing.T, ctx context.Context, n *Node, root cid.Cid, out string, data []byte) {
	t.Helper()
	res, err := n.Get(ctx, root, GetOptions{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	var fetched uint64
	for _, v := range res.From {
		fetched += v
	}
	if fetched >= uint64(len(data)) {
		t.Errorf("resumed get fetched %d bytes of %d: nothing was kept", fetched, len(data))
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
		t.Fatal("resumed download differs from the original")
	}
}

// OpenAndStart starts a node as Open then Start do, through a bootstrap
// peer, and refuses a repo another process (or Open) holds.
func TestOpenAndStart(t *testing.T) {
	a := startNode(t, NodeOptions{})
	root, data := addFile(t, a, 3<<20, 0)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := NodeOptions{Listen: loopback, Bootstrap: []libp2ppeer.AddrInfo{{ID: a.Host.ID(), Addrs: a.Host.Addrs()}}}
	n, err := OpenAndStart(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n.Repo.ID != n.Host.ID() {
		t.Fatalf("the host is %s, the repo's identity %s", n.Host.ID(), n.Repo.ID)
	}
	if _, err := OpenAndStart(ctx, dir, opts); !errors.Is(err, ErrRepoLocked) {
		t.Fatalf("a second OpenAndStart of a repo in use: got %v, want ErrRepoLocked", err)
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if _, err := n.Get(ctx, root, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes (%v), not the content", len(got), err)
	}
	n.Close()
	if err := n.Repo.Close(); err != nil {
		t.Fatal(err)
	}
}
