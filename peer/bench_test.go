package peer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// BenchmarkGet adds a 1 GiB file on one node and gets it on another over
// loopback TCP (every block verified, the output synced), and in the same
// iterations sends 1 GiB over a raw libp2p stream between the same two
// hosts. It reports x-raw, get into tmpfs against the raw stream into
// memory (target >= 0.7), and x-raw-disk, get onto the disk against the
// raw stream written to a file on the same disk and synced (on a machine
// whose disk is slower than its loopback, the disk bounds both).
func BenchmarkGet(b *testing.B) {
	const size = 1 << 30
	shm := os.Getenv("P2PSHARE_BENCH_TMPFS")
	if shm == "" {
		shm = "/dev/shm"
	}
	if st, err := os.Stat(shm); err != nil || !st.IsDir() {
		b.Skipf("no tmpfs at %s (set P2PSHARE_BENCH_TMPFS)", shm)
	}
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
	// Output into memory (tmpfs) measures p2pshare against the raw stream;
	// output to disk is compared with the raw stream written to disk. The
	// page cache is flushed before each timed run so that one run's
	// writeback does not slow the next.
	get := func(out string) time.Duration {
		syscall.Sync()
		t0 := time.Now()
		if _, err := c.Get(ctx, res.CID, GetOptions{Out: out}); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		c.Remove(ctx, res.CID)
		os.Remove(out)
		return d
	}
	raw := func(w io.Writer) time.Duration {
		syscall.Sync()
		t0 := time.Now()
		st, err := c.Host.NewStream(ctx, a.Host.ID(), "/bench-raw")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(w, st); err != nil || n != size {
			b.Fatalf("raw: %d %v", n, err)
		}
		if f, ok := w.(*os.File); ok {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	b.SetBytes(size)
	var memTime, diskTime, rawTime, fileTime time.Duration
	b.ResetTimer()
	for range b.N {
		memTime += get(filepath.Join(shm, fmt.Sprintf("p2pshare-bench-%d.bin", os.Getpid())))
		b.StopTimer()
		diskTime += get(filepath.Join(b.TempDir(), "out.bin"))
		rawTime += raw(io.Discard)
		out := filepath.Join(b.TempDir(), "raw.bin")
		rf, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		fileTime += raw(rf)
		rf.Close()
		os.Remove(out)
		b.StartTimer()
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/memTime.Seconds(), "get-MB/s")
	b.ReportMetric(mb/rawTime.Seconds(), "raw-MB/s")
	b.ReportMetric(rawTime.Seconds()/memTime.Seconds(), "x-raw")
	b.ReportMetric(mb/diskTime.Seconds(), "get-disk-MB/s")
	b.ReportMetric(mb/fileTime.Seconds(), "raw-disk-MB/s")
	b.ReportMetric(fileTime.Seconds()/diskTime.Seconds(), "x-raw-disk")
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
