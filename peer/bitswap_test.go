package peer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bsmsg "github.com/ipfs/boxo/bitswap/message"
	pb "github.com/ipfs/boxo/bitswap/message/pb"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

func newIPFSClient(t *testing.T, seed *Node) *peertest.IPFSClient {
	t.Helper()
	return peertest.NewIPFSClient(t, peertest.Info(seed.Host))
}

// TestBitswapServesKubo: boxo's Bitswap client, the one Kubo runs, on a
// host of its own fetches a whole added folder (a multi-leaf file, a
// subfolder, an empty file and folder) and a single file from a seed,
// and every byte is the same as the seed's files.
func TestBitswapServesKubo(t *testing.T) {
	seed := startNode(t, NodeOptions{Bitswap: true})
	dir := filepath.Join(t.TempDir(), "tree")
	want := map[string][]byte{
		"big.bin":       writeRandom(t, filepath.Join(dir, "big.bin"), 3<<20+7, 21),
		"sub/small.txt": writeRandom(t, filepath.Join(dir, "sub", "small.txt"), 1000, 22),
		"sub/empty":     writeRandom(t, filepath.Join(dir, "sub", "empty"), 0, 23),
	}
	if err := os.MkdirAll(filepath.Join(dir, "nothing"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	folder, err := seed.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "one.bin")
	oneData := writeRandom(t, single, 2<<20+3, 24)
	one, err := seed.Add(ctx, single, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}

	c := newIPFSClient(t, seed)
	out := filepath.Join(t.TempDir(), "got")
	if err := c.Get(ctx, folder.CID, out); err != nil {
		t.Fatalf("fetching folder %s by Bitswap: %v", folder.CID, err)
	}
	for rel, data := range want {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: fetched by Bitswap differs from the seed's file (%d bytes, want %d; err %v)", rel, len(got), len(data), err)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "nothing")); err != nil || !st.IsDir() {
		t.Errorf("empty folder not fetched: %v", err)
	}
	outOne := filepath.Join(t.TempDir(), "one")
	if err := c.Get(ctx, one.CID, outOne); err != nil {
		t.Fatalf("fetching file %s by Bitswap: %v", one.CID, err)
	}
	if got, err := os.ReadFile(outOne); err != nil || sha256.Sum256(got) != sha256.Sum256(oneData) {
		t.Errorf("file fetched by Bitswap differs (%d bytes, want %d; err %v)", len(got), len(oneData), err)
	}
}

// TestNoBitswap: a node started without Bitswap (seed --no-bitswap) does
// not speak the protocol, and a Bitswap client connected to it gets
// nothing.
func TestNoBitswap(t *testing.T) {
	seed := startNode(t, NodeOptions{})
	root, _ := addFile(t, seed, 100000, 0)
	c := newIPFSClient(t, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.GetBlock(ctx, root); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GetBlock from a node without Bitswap: %v, want a timeout", err)
	}
	for _, p := range bitswapProtocols {
		if s, err := c.Host.NewStream(context.Background(), seed.Host.ID(), p); err == nil {
			s.Reset()
			t.Errorf("a node without Bitswap accepted a %s stream", p)
		}
	}
}

// TestBitswapServesOnlyValidBlocks: a block the seed does not hold, and a
// leaf whose file changed after add, are not served; the rest of the file
// still is.
func TestBitswapServesOnlyValidBlocks(t *testing.T) {
	seed := startNode(t, NodeOptions{Bitswap: true})
	path := filepath.Join(t.TempDir(), "f.bin")
	data := writeRandom(t, path, 2<<20, 31)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := seed.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := seed.Repo.store().Leaves(ctx, res.CID)
	if err != nil || len(leaves) != 2 {
		t.Fatalf("leaves of %s: %v, %v (want 2)", res.CID, leaves, err)
	}
	// Change the second MiB in place: its leaf no longer matches.
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 4096), 1<<20+100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c := newIPFSClient(t, seed)
	b, err := c.GetBlock(ctx, leaves[0])
	if err != nil || !bytes.Equal(b.RawData(), data[:1<<20]) {
		t.Fatalf("unchanged leaf: %v", err)
	}
	missing, _ := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum([]byte("not on the seed"))
	for name, k := range map[string]cid.Cid{"changed leaf": leaves[1], "block not held": missing} {
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := c.GetBlock(sctx, k)
		scancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s %s: %v, want no block (a timeout)", name, k, err)
		}
	}
}

// TestBitswapWantlistBound: a remote that sends a wantlist of 20,000
// entries has at most bitswapMaxWants of them kept by the server.
func TestBitswapWantlistBound(t *testing.T) {
	seed := startNode(t, NodeOptions{Bitswap: true})
	h := peertest.NewHost(t)
	peertest.Connect(t, h, seed.Host)
	net := bsnet.NewFromIpfsHost(h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const sent = 20000
	for batch := range 4 {
		m := bsmsg.New(false)
		for i := range sent / 4 {
			k, _ := cid.V1Builder{Codec: cid.Raw, MhType: mh.SHA2_256}.Sum([]byte{byte(batch), byte(i), byte(i >> 8)})
			m.AddEntry(k, 1, pb.Message_Wantlist_Have, false)
		}
		if err := net.SendMessage(ctx, seed.Host.ID(), m); err != nil {
			t.Fatalf("sending wantlist: %v", err)
		}
	}
	// The server takes messages in the background: wait until it has
	// seen some of the wants, then give it the time to take the rest.
	for len(seed.bitswap.srv.WantlistForPeer(h.ID())) == 0 {
		if ctx.Err() != nil {
			t.Fatal("the server never recorded the remote's wants")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n := len(seed.bitswap.srv.WantlistForPeer(h.ID())); n > bitswapMaxWants {
			t.Fatalf("server keeps %d wants of a remote, bound %d", n, bitswapMaxWants)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("sent %d wants; the server keeps %d", sent, len(seed.bitswap.srv.WantlistForPeer(h.ID())))
}
