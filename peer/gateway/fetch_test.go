package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/gateway"
	"github.com/p2pshare/p2pshare/peer/nodetest"
	"github.com/p2pshare/p2pshare/peer/peertest"
	"github.com/p2pshare/p2pshare/transfer/transfertest"
)

// startNode runs a node on a fresh repo on loopback, joining through boot.
func startNode(t *testing.T, boot ...*peer.Node) *peer.Node {
	t.Helper()
	var opts peer.NodeOptions
	for _, b := range boot {
		opts.Bootstrap = append(opts.Bootstrap, nodetest.Info(b))
	}
	return nodetest.Start(t, opts)
}

// share adds a folder holding big.bin (size bytes in 256 KiB leaves) and
// notes.txt to n and provides it; it returns the folder's CID and
// big.bin's bytes.
func share(t *testing.T, n *peer.Node, size int) (cid.Cid, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	mrand.New(mrand.NewSource(int64(size))).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("fetched from the swarm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := n.Add(ctx, dir, peer.AddOptions{Options: chunker.Options{ChunkSize: 256 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.DHT.Provide(ctx, res.CID); err != nil {
		t.Fatal(err)
	}
	return res.CID, data
}

// serveFetching serves n's gateway with the swarm exchange, each block
// given timeout.
func serveFetching(t *testing.T, n *peer.Node, timeout time.Duration) string {
	t.Helper()
	h, err := gateway.NewHandler(n.Repo.Blockstore(), n.Exchange(timeout))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// fetch is peertest.HTTPDo: responses here may be cut off.
func fetch(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	return peertest.HTTPDo(url, hdr)
}

// received is what n's downloads received so far: verified block bytes
// and blocks, and verification failures (its metrics).
func received(t *testing.T, n *peer.Node) (bytes, blocks, bad float64) {
	t.Helper()
	fams, err := n.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if len(f.GetMetric()) == 0 {
			continue
		}
		v := f.GetMetric()[0].GetCounter().GetValue()
		switch f.GetName() {
		case "p2pshare_block_bytes_received_total":
			bytes = v
		case "p2pshare_blocks_received_total":
			blocks = v
		case "p2pshare_verification_failures_total":
			bad = v
		}
	}
	return bytes, blocks, bad
}

// downloadsCounted is how many downloads n's metrics count, running or
// finished.
func downloadsCounted(t *testing.T, n *peer.Node) uint64 {
	t.Helper()
	fams, err := n.MetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "p2pshare_downloads_active":
				count += uint64(m.GetGauge().GetValue())
			case "p2pshare_download_duration_seconds":
				count += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return count
}

// TestGatewayFetchesFromSwarm: node A holds a 12 MiB file and a folder;
// node B, which holds neither, serves them through its gateway. A Range
// request in the middle of the file fetches only a few of its 48 leaves;
// one near the end, B no longer connected to A, finds A again through the
// DHT;
// whole files, the folder's listing and a file inside it come out byte
// for byte; a CID nobody has is a 504 within a bounded time.
func TestGatewayFetchesFromSwarm(t *testing.T) {
	// c is only a DHT node: b finds a through the providers of root.
	c := startNode(t)
	a := startNode(t, c)
	const size = 12 << 20
	root, data := share(t, a, size)
	b := startNode(t, c)
	const blockTimeout = 3 * time.Second
	url := serveFetching(t, b, blockTimeout)

	// A 256 KiB range in the middle, first: nothing is cached yet.
	from, to := size/2+1000, size/2+1000+256<<10-1
	resp, body, err := fetch(t, fmt.Sprintf("%s/ipfs/%s/big.bin", url, root), map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", from, to)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[from:to+1]) {
		t.Fatalf("range: %d, %d bytes (want 206 and %d bytes equal)", resp.StatusCode, len(body), to+1-from)
	}
	gotBytes, gotBlocks, _ := received(t, b)
	t.Logf("range of %d KiB in the middle of %d MiB: B fetched %d blocks, %.0f KiB", (to+1-from)>>10, size>>20, int(gotBlocks), gotBytes/1024)
	// The range spans 2 leaves; boxo's reader reads ahead 10. Less than a
	// third of the file is far from "downloaded it all first".
	if gotBytes >= size/3 || gotBlocks < 3 {
		t.Errorf("range request fetched %.0f bytes in %d blocks of a %d-byte file", gotBytes, int(gotBlocks), size)
	}

	// Another range, near the end, once b has let go of a: the folder and
	// file nodes come from the cache, the first block fetched is a leaf,
	// and a is found again as a provider of the path's root.
	b.Host.Network().ClosePeer(a.Host.ID())
	from = size - 300<<10
	resp, body, err = fetch(t, fmt.Sprintf("%s/ipfs/%s/big.bin", url, root), map[string]string{"Range": fmt.Sprintf("bytes=%d-", from)})
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[from:]) {
		t.Fatalf("range at the end, after a disconnect: %v, %d bytes, err %v", resp.StatusCode, len(body), err)
	}

	resp, body, err = fetch(t, fmt.Sprintf("%s/ipfs/%s/big.bin", url, root), nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("whole file: %v, %d bytes, err %v", resp.StatusCode, len(body), err)
	}
	resp, body, err = fetch(t, fmt.Sprintf("%s/ipfs/%s/notes.txt", url, root), nil)
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "fetched from the swarm\n" {
		t.Fatalf("notes.txt: %v %q %v", resp.StatusCode, body, err)
	}
	resp, body, err = fetch(t, fmt.Sprintf("%s/ipfs/%s/", url, root), nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("big.bin")) || !bytes.Contains(body, []byte("notes.txt")) {
		t.Fatalf("listing: %v err %v, body holds the names: %v", resp.StatusCode, err, bytes.Contains(body, []byte("notes.txt")))
	}
	if has, _ := b.Repo.Blockstore().Has(context.Background(), root); has {
		t.Errorf("the gateway wrote a fetched block into B's repo")
	}
	if n := downloadsCounted(t, b); n != 0 {
		t.Errorf("the gateway's fetches counted as %d downloads in B's metrics", n)
	}

	// A block nobody has.
	digest := make([]byte, 32)
	rand.Read(digest)
	m, _ := mh.Encode(digest, mh.SHA2_256)
	missing := cid.NewCidV1(uint64(multicodec.Raw), m)
	start := time.Now()
	resp, _, err = fetch(t, fmt.Sprintf("%s/ipfs/%s", url, missing), nil)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("a CID nobody has: %d, want 504", resp.StatusCode)
	}
	if took > blockTimeout+5*time.Second {
		t.Errorf("a CID nobody has took %s (block timeout %s)", took, blockTimeout)
	}
	t.Logf("a CID nobody has: %d after %s", resp.StatusCode, took.Round(time.Millisecond))
}

// TestGatewayRefusesHostileBlocks: a peer that serves the file's root
// right and garbage for its leaves is dropped at its first bad leaf; the
// response holds none of the garbage, and once an honest peer is there
// the file comes out exact.
func TestGatewayRefusesHostileBlocks(t *testing.T) {
	a := startNode(t)
	root, data := share(t, a, 2<<20+333)
	ctx := context.Background()
	abs := a.Repo.Blockstore()
	getA := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		b, err := abs.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		return b.RawData(), nil
	}
	file, err := chunker.Resolve(ctx, root, []string{"big.bin"}, getA)
	if err != nil {
		t.Fatal(err)
	}
	// The hostile peer: the file node as it is, each leaf garbage.
	st := transfertest.NewStore()
	fileNode, err := getA(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	st.Set(file, fileNode)
	garbage := bytes.Repeat([]byte("HOSTILE!"), 1<<15) // 256 KiB, a leaf's size
	var leaves []cid.Cid
	if err := chunker.Leaves(ctx, file, getA, func(c cid.Cid) error {
		leaves = append(leaves, c)
		st.Set(c, garbage)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.SetLeaves(file, leaves)
	hostile := transfertest.NewHostile(t, st, transfertest.Serve, 0)

	// B knows only the hostile peer at first.
	b := startNode(t)
	url := serveFetching(t, b, 2*time.Second)
	peertest.Connect(t, b.Host, hostile.Host)
	resp, body, err := fetch(t, fmt.Sprintf("%s/ipfs/%s", url, file), nil)
	if resp == nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte("HOSTILE!")) {
		t.Fatalf("the response holds the hostile peer's bytes (status %d)", resp.StatusCode)
	}
	if resp != nil && resp.StatusCode == http.StatusOK && bytes.Equal(body, data) {
		t.Fatalf("served the whole file with only a hostile peer to fetch from")
	}
	askedLeaf := false
	for _, w := range hostile.Wants() {
		askedLeaf = askedLeaf || w.CID.Equals(leaves[0])
	}
	_, _, bad := received(t, b)
	if !askedLeaf || bad == 0 {
		t.Fatalf("the hostile peer was not put to the test: asked for a leaf %v, verification failures %v", askedLeaf, bad)
	}
	t.Logf("hostile only: status %d, %q, %v verification failures", resp.StatusCode, body, bad)

	// With an honest peer as well, the file comes out exact.
	peertest.Connect(t, b.Host, a.Host)
	resp, body, err = fetch(t, fmt.Sprintf("%s/ipfs/%s", url, file), nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("with an honest peer: %v, %d bytes, err %v", resp.StatusCode, len(body), err)
	}
}
