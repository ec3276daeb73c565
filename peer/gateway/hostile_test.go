package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/gateway"
	"github.com/p2pshare/p2pshare/peer/peertest"
)

// TestGatewayRefusesBadBlock: a block that does not match its CID is never
// served, raw or deserialized: here a leaf whose file was changed in place
// (same size) after add, so the repo reads other bytes for its CID.
func TestGatewayRefusesBadBlock(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.txt")
	if err := os.WriteFile(file, bytes.Repeat([]byte("the real bytes "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := peer.Open(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Add(context.Background(), file, peer.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := gateway.NewHandler(r.Blockstore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// Served while the file is as added.
	if resp, body := peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s", srv.URL, res.CID), nil); resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("the real bytes")) {
		t.Fatalf("before the change: %d %q", resp.StatusCode, body)
	}
	lie := bytes.Repeat([]byte("not the bytes! "), 100)
	if err := os.WriteFile(file, lie, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "?format=raw", "?format=car"} {
		resp, body := peertest.HTTPGet(t, fmt.Sprintf("%s/ipfs/%s%s", srv.URL, res.CID, q), nil)
		if resp.StatusCode == http.StatusOK && len(body) > 0 && q != "?format=car" {
			t.Errorf("%q: served %d bytes of a block that does not match its CID", q, len(body))
		}
		if q == "?format=car" && bytes.Contains(body, lie[:30]) {
			t.Errorf("car: holds the changed file's bytes")
		}
	}
}
