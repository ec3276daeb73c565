package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// TestGatewayFetchesFromOtherSeed runs real processes: seed A holds a
// file; seed B, started with --gateway and --bootstrap A, holds nothing,
// and its gateway serves the file, whole and as a Range, from A.
func TestGatewayFetchesFromOtherSeed(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 3<<20+17)
	repoA, repoB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	addrA := seed(t, repoA)
	r := run(t, "--repo", repoA, "-q", "add", "--chunk-size", "262144", src)
	if r.code != 0 {
		t.Fatalf("add through seed A: %+v", r)
	}
	root := strings.TrimSpace(r.stdout)

	// A free loopback port for B's gateway.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := l.Addr().String()
	l.Close()
	seed(t, repoB, "--bootstrap", addrA, "--gateway", gw)

	url := fmt.Sprintf("http://%s/ipfs/%s", gw, root)
	body, code := httpGet(t, url, "")
	if code != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET through B's gateway: %d, %d bytes (want 200 and %d equal bytes)", code, len(body), len(data))
	}
	from := len(data) / 2
	body, code = httpGet(t, url, fmt.Sprintf("bytes=%d-", from))
	if code != http.StatusPartialContent || !bytes.Equal(body, data[from:]) {
		t.Fatalf("Range through B's gateway: %d, %d bytes", code, len(body))
	}
	if ls := run(t, "--repo", repoB, "ls"); strings.Contains(ls.stdout, root) {
		t.Errorf("B's repo lists what its gateway fetched: %q", ls.stdout)
	}
}

// httpGet fetches url, with a Range header unless rng is empty.
func httpGet(t *testing.T, url, rng string) ([]byte, int) {
	t.Helper()
	var hdr map[string]string
	if rng != "" {
		hdr = map[string]string{"Range": rng}
	}
	resp, body := peertest.HTTPGet(t, url, hdr)
	return body, resp.StatusCode
}
