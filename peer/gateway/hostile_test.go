package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/gateway"
)

var errAbsent = errors.New("absent")

// lying is a Blocks that holds one CID but returns other bytes for it.
type lying struct{ c cid.Cid }

func (l lying) Has(_ context.Context, c cid.Cid) (bool, error) { return c.Equals(l.c), nil }
func (l lying) Get(_ context.Context, c cid.Cid) ([]byte, error) {
	if !c.Equals(l.c) {
		return nil, errAbsent
	}
	return []byte("not the bytes the CID names"), nil
}

// TestGatewayRefusesBadBlock: a block that does not match its CID is never
// served, raw or deserialized.
func TestGatewayRefusesBadBlock(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mh, err := multihash.Sum([]byte("the real bytes"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	c := cid.NewCidV1(cid.Raw, mh)
	h, err := gateway.NewHandler(lying{c}, errAbsent)
	if err != nil {
		t.Fatal(err)
	}
	a, err := gateway.Serve(ctx, "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"", "?format=raw", "?format=car"} {
		resp, body := get(t, fmt.Sprintf("http://%s/ipfs/%s%s", a, c, q), nil)
		if resp.StatusCode == http.StatusOK && len(body) > 0 && q != "?format=car" {
			t.Errorf("%q: served %d bytes of a block that does not match its CID", q, len(body))
		}
		if q == "?format=car" && containsLie(body) {
			t.Errorf("car: holds the lying block's bytes")
		}
	}
}

func containsLie(b []byte) bool {
	return len(b) > 0 && bytes.Contains(b, []byte("not the bytes the CID names"))
}

func TestLoopbackDefault(t *testing.T) {
	for in, want := range map[string]string{":8080": "127.0.0.1:8080", "8080": "127.0.0.1:8080", "0.0.0.0:8080": "0.0.0.0:8080", "[::1]:80": "[::1]:80"} {
		if got := gateway.LoopbackDefault(in); got != want {
			t.Errorf("LoopbackDefault(%q) = %q, want %q", in, got, want)
		}
	}
}
