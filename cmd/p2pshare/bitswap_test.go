package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// seedInfo parses a seed's listening line's address.
func seedInfo(t *testing.T, addr string) peer.AddrInfo {
	t.Helper()
	ai, err := peer.AddrInfoFromP2pAddr(ma.StringCast(addr))
	if err != nil {
		t.Fatalf("seed address %q: %v", addr, err)
	}
	return *ai
}

// TestSeedServesBitswap runs a real `seed` process: an IPFS node of
// boxo's own parts (the Bitswap client Kubo runs) connected to it fetches
// a file added through the seed, byte for byte. A `seed --no-bitswap`
// gives the same client nothing.
func TestSeedServesBitswap(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 3<<20+5)
	for _, tc := range []struct {
		name   string
		flags  []string
		config string // config.json, if any
		serve  bool
	}{
		{"default", nil, "", true},
		{"--no-bitswap", []string{"--no-bitswap"}, "", false},
		{"config no_bitswap", nil, `{"no_bitswap": true}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			if tc.config != "" {
				if r := run(t, "--repo", repo, "init"); r.code != 0 {
					t.Fatal(r)
				}
				if err := os.WriteFile(filepath.Join(repo, "config.json"), []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			addr := seed(t, repo, tc.flags...)
			r := run(t, "--repo", repo, "-q", "add", src)
			if r.code != 0 {
				t.Fatalf("add through the seed: %+v", r)
			}
			root := cid.MustParse(strings.TrimSpace(r.stdout))
			c := peertest.NewIPFSClient(t, seedInfo(t, addr))
			timeout := 30 * time.Second
			if !tc.serve {
				timeout = 3 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			out := filepath.Join(t.TempDir(), "got.bin")
			err := c.Get(ctx, root, out)
			if !tc.serve {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Bitswap get from seed --no-bitswap: %v, want nothing (a timeout)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Bitswap get of %s from the seed: %v", root, err)
			}
			got, err := os.ReadFile(out)
			if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("fetched by Bitswap: %d bytes, SHA-256 differs from the original (err %v)", len(got), err)
			}
		})
	}
}
