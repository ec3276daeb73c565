package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/gateway"
	"github.com/p2pshare/p2pshare/peer/peertest"
)

// serve adds a folder holding a 3.5 MiB file to a fresh repo and serves
// the repo on a real loopback gateway. It returns the base URL, the
// folder's CID and the file's bytes.
func serve(t *testing.T) (string, cid.Cid, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := filepath.Join(t.TempDir(), "share")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+512<<10)
	rand.New(rand.NewSource(23)).Read(data)
	if err := os.WriteFile(filepath.Join(dir, "film.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello gateway\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := peer.Open(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	res, err := r.Add(ctx, dir, peer.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := gateway.NewHandler(r.Blockstore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, res.CID, data
}

func TestGatewayRange(t *testing.T) {
	base, root, data := serve(t)
	url := fmt.Sprintf("%s/ipfs/%s/film.bin", base, root)

	resp, body := peertest.HTTPGet(t, url, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("whole file: status %d, %d bytes, equal %v", resp.StatusCode, len(body), bytes.Equal(body, data))
	}
	for _, rg := range [][2]int{{0, 99}, {1<<20 - 10, 1<<20 + 10}, {len(data) / 2, len(data)/2 + 300000}, {len(data) - 7, len(data) - 1}} {
		resp, body := peertest.HTTPGet(t, url, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", rg[0], rg[1])})
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("range %v: status %d", rg, resp.StatusCode)
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", rg[0], rg[1], len(data)); resp.Header.Get("Content-Range") != want {
			t.Errorf("range %v: Content-Range %q, want %q", rg, resp.Header.Get("Content-Range"), want)
		}
		if !bytes.Equal(body, data[rg[0]:rg[1]+1]) {
			t.Errorf("range %v: %d bytes differ from the file's", rg, len(body))
		}
	}

	resp, body = peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s/notes.txt", base, root), nil)
	if string(body) != "hello gateway\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("notes.txt: %q, Content-Type %q", body, resp.Header.Get("Content-Type"))
	}
	resp, body = peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s/", base, root), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "film.bin") || !strings.Contains(string(body), "notes.txt") {
		t.Errorf("directory listing: status %d, names missing", resp.StatusCode)
	}
	resp, _ = peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s/nothing-here", base, root), nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing name: status %d, want 404", resp.StatusCode)
	}
	resp, _ = peertest.HTTPGet(t, base+"/ipfs/bafkqaaa", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ipfs/bafkqaaa probe: status %d, want 200", resp.StatusCode)
	}
}

// TestGatewayTrustless fetches the folder as a CAR and a leaf as a raw
// block and checks every block against its CID with go-car.
func TestGatewayTrustless(t *testing.T) {
	base, root, data := serve(t)

	resp, body := peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s?format=car", base, root), nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/vnd.ipld.car") {
		t.Fatalf("car: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(br.Roots) != 1 || !br.Roots[0].Equals(root) {
		t.Fatalf("car roots %v, want [%s]", br.Roots, root)
	}
	n, leafBytes := 0, 0
	var leaf cid.Cid
	for {
		b, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("block %d: %v", n, err)
		}
		sum, err := b.Cid().Prefix().Sum(b.RawData())
		if err != nil || !sum.Equals(b.Cid()) {
			t.Fatalf("block %d %s does not match its CID", n, b.Cid())
		}
		if b.Cid().Prefix().Codec == cid.Raw && len(b.RawData()) == 1<<20 {
			leafBytes += len(b.RawData())
			leaf = b.Cid()
		}
		n++
	}
	// folder, file node, 4 leaves of film.bin, notes.txt
	if n != 7 || leafBytes != 3<<20 {
		t.Errorf("car: %d blocks, %d bytes in full leaves; want 7 and %d", n, leafBytes, 3<<20)
	}
	t.Logf("car of %s: %d blocks, %d bytes", root, n, len(body))

	// entity-bytes: only the leaves a range needs.
	resp, body = peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s/film.bin?format=car&dag-scope=entity&entity-bytes=0:99", base, root), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("entity-bytes car: status %d", resp.StatusCode)
	}
	if len(body) > 1<<20+64<<10 {
		t.Errorf("entity-bytes=0:99 CAR is %d bytes: more than the first leaf", len(body))
	}
	if len(body) >= len(data) {
		t.Errorf("entity-bytes CAR holds the whole file")
	}

	resp, body = peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s", base, leaf), map[string]string{"Accept": "application/vnd.ipld.raw"})
	if resp.StatusCode != http.StatusOK || len(body) != 1<<20 {
		t.Fatalf("raw block: status %d, %d bytes", resp.StatusCode, len(body))
	}
	if sum, _ := leaf.Prefix().Sum(body); !sum.Equals(leaf) {
		t.Errorf("raw block does not match its CID")
	}
}
