package peer

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// BenchmarkGet adds a 1 GiB file on one node and gets it on another over
// loopback TCP (written to disk, every block verified), and in the same
// iterations sends 1 GiB over a raw libp2p stream between the same two
// hosts, once into io.Discard and once into a file. It reports the rates
// and the ratios x-raw (target >= 0.7) and x-raw-file (the same stream
// written to disk, which bounds get on a machine whose disk is slower
// than its loopback).
func BenchmarkGet(b *testing.B) {
	const size = 1 << 30
	ctx := context.Background()
	a := benchNode(b)
	c := benchNode(b)
	src := filepath.Join(b.TempDir(), "src.bin")
	f, _ := os.Create(src)
	buf := make([]byte, 1<<20)
	for i := range size >> 20 {
		for k := range buf {
			buf[k] = byte(i*31 + k*7 + k>>8)
		}
		f.Write(buf)
	}
	f.Close()
	res, err := a.Add(ctx, src, AddOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Host.Connect(ctx, libp2ppeer.AddrInfo{ID: a.Host.ID(), Addrs: a.Host.Addrs()}); err != nil {
		b.Fatal(err)
	}
	if err := a.DHT.Provide(ctx, res.CID); err != nil {
		b.Fatal(err)
	}
	a.Host.SetStreamHandler("/bench-raw", func(st network.Stream) {
		defer st.Close()
		for range size >> 20 {
			if _, err := st.Write(buf); err != nil {
				return
			}
		}
	})
	b.SetBytes(size)
	var getTime, rawTime, fileTime time.Duration
	b.ResetTimer()
	for range b.N {
		out := filepath.Join(b.TempDir(), "out.bin")
		t0 := time.Now()
		if _, err := c.Get(ctx, res.CID, GetOptions{Out: out}); err != nil {
			b.Fatal(err)
		}
		getTime += time.Since(t0)
		b.StopTimer()
		c.Remove(ctx, res.CID)
		os.Remove(out)
		t0 = time.Now()
		st, err := c.Host.NewStream(ctx, a.Host.ID(), "/bench-raw")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, st); err != nil || n != size {
			b.Fatalf("raw: %d %v", n, err)
		}
		rawTime += time.Since(t0)

		t0 = time.Now()
		st, err = c.Host.NewStream(ctx, a.Host.ID(), "/bench-raw")
		if err != nil {
			b.Fatal(err)
		}
		rf, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(rf, st); err != nil || n != size {
			b.Fatalf("raw to file: %d %v", n, err)
		}
		rf.Sync()
		rf.Close()
		fileTime += time.Since(t0)
		os.Remove(out)
		b.StartTimer()
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/getTime.Seconds(), "get-MB/s")
	b.ReportMetric(mb/rawTime.Seconds(), "raw-MB/s")
	b.ReportMetric(mb/fileTime.Seconds(), "raw-file-MB/s")
	b.ReportMetric(rawTime.Seconds()/getTime.Seconds(), "x-raw")
	b.ReportMetric(fileTime.Seconds()/getTime.Seconds(), "x-raw-file")
}

func benchNode(b *testing.B) *Node {
	r, err := Open(filepath.Join(b.TempDir(), "repo"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	n, err := Start(context.Background(), r, NodeOptions{Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}
