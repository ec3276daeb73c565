package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/peer/peertest"
	"github.com/p2pshare/p2pshare/transfer"
	"github.com/p2pshare/p2pshare/transfer/transfertest"
)

// floodFor is how long the flooder runs against the seed.
const floodFor = 20 * time.Second

// maxSeedRSS is the most memory the flooded seed may hold at its peak.
const maxSeedRSS = 300 << 20

// TestFloodedSeed floods a real seed process for 20 s from a host that
// never reads: WANT/CANCEL pairs on many streams (which also make the
// seed super-seed and reveal leaves, queuing HAVEs), endless messages of
// an unknown type, and block-sized messages trickled a byte at a time.
// Meanwhile an honest `get` of the same 64 MiB from the same seed must
// complete and verify, and the seed's peak RSS (VmHWM) stay under
// 300 MiB.
func TestFloodedSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s flood")
	}
	if raceEnabled {
		t.Skip("the race detector's memory says nothing of the seed's")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	data := writeRandom(t, src, 64<<20)
	repoA, repoC := filepath.Join(dir, "a"), filepath.Join(dir, "c")
	seed, addr := startSeed(t, repoA)
	pid := seed.cmd.Process.Pid
	r := run(t, "--repo", repoA, "-q", "add", src)
	if r.code != 0 {
		t.Fatalf("add through the seed: %+v", r)
	}
	root, err := cid.Decode(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var leaves []cid.Cid // 1 MiB raw leaves, as the default profile cuts them
	for off := 0; off < len(data); off += 1 << 20 {
		leaves = append(leaves, transfertest.Sum(cid.Raw, mh.SHA2_256, -1, data[off:min(off+1<<20, len(data))]))
	}
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		t.Fatal(err)
	}
	base := rss(t, pid, "VmRSS")

	flooder := peertest.NewHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	if err := flooder.Connect(ctx, *ai); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pairs, streams := 0, 0
	// Each flood reopens its stream when the seed resets it, until ctx ends.
	flood := func(n int, f func(*transfertest.Client) int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					c, err := transfertest.Open(ctx, flooder, ai.ID, root)
					if err != nil {
						return
					}
					k := f(c)
					c.S.Reset()
					mu.Lock()
					pairs, streams = pairs+k, streams+1
					mu.Unlock()
				}
			}()
		}
	}
	flood(48, func(c *transfertest.Client) int { return c.FloodWantCancel(ctx, leaves) })
	flood(2, func(c *transfertest.Client) int { return floodUnknown(ctx, c) })
	flood(16, func(c *transfertest.Client) int { return trickle(ctx, c) })

	// The seed's memory, sampled while the flood runs.
	peak := base
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			peak = max(peak, rss(t, pid, "VmRSS"))
			time.Sleep(100 * time.Millisecond) // a sampling period
		}
	}()

	// The honest downloader, from a second after the flood began.
	time.Sleep(time.Second) // let the flood build up first: not a synchronisation
	out := filepath.Join(dir, "c.bin")
	start := time.Now()
	got := run(t, "--repo", repoC, "get", root.String(), "-o", out, "--bootstrap", addr, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "60s")
	took := time.Since(start)
	if got.code != 0 {
		t.Fatalf("get while the seed is flooded: %+v", got)
	}
	if b, err := os.ReadFile(out); err != nil || sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("the download differs from the original (%v)", err)
	}
	flooding := ctx.Err() == nil
	<-ctx.Done()
	<-sampled
	wg.Wait()
	hwm := rss(t, pid, "VmHWM")
	t.Logf("seed RSS: %d MiB before the flood, %d MiB peak sampled, VmHWM %d MiB; flooder sent %d WANT/CANCEL pairs over %d streams; honest get of 64 MiB took %.1f s (flood still running at its end: %v)",
		base>>20, peak>>20, hwm>>20, pairs, streams, took.Seconds(), flooding)
	if !flooding {
		t.Errorf("the honest download took %.1f s, longer than the flood", took.Seconds())
	}
	if hwm > maxSeedRSS {
		t.Errorf("the flooded seed's peak RSS was %d MiB, want under %d MiB", hwm>>20, maxSeedRSS>>20)
	}
}

// floodUnknown writes 1 MiB messages of an unknown type (skipped by the
// seed) until ctx ends or the stream breaks.
func floodUnknown(ctx context.Context, c *transfertest.Client) int {
	stop := context.AfterFunc(ctx, func() { c.S.Reset() })
	defer stop()
	msg := binary.AppendUvarint(nil, 1<<20)
	msg = append(msg, 42)
	msg = append(msg, make([]byte, 1<<20-1)...)
	for ctx.Err() == nil {
		if _, err := c.S.Write(msg); err != nil {
			break
		}
	}
	return 0
}

// trickle announces a block-sized BLOCK message (not for a server to
// receive, which it learns only at the end) and sends its body a byte
// every 50 ms, so the seed holds a buffer for it as long as it waits.
func trickle(ctx context.Context, c *transfertest.Client) int {
	stop := context.AfterFunc(ctx, func() { c.S.Reset() })
	defer stop()
	head := binary.AppendUvarint(nil, transfer.MaxMessageLen)
	head = append(head, byte(transfer.MsgBlock))
	if _, err := c.S.Write(head); err != nil {
		return 0
	}
	for ctx.Err() == nil {
		if _, err := c.S.Write([]byte{0}); err != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // the trickle's pace
	}
	return 0
}

// rss reads a memory figure (VmRSS, VmHWM) of process pid, in bytes.
func rss(t *testing.T, pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
