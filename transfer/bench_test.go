package transfer

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

const rawProto = "/p2pshare/bench-raw/1.0.0"

// tcpInfo is h's AddrInfo with TCP addresses only, so the benchmark
// measures TCP (Noise, yamux) as the issue asks.
func tcpInfo(h host.Host) peer.AddrInfo {
	ai := peer.AddrInfo{ID: h.ID()}
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai
}

// BenchmarkDownload fetches 256 MiB in 1 MiB blocks from one seeder to one
// downloader over loopback TCP and, in the same iterations, sends the same
// bytes over a raw libp2p stream between the same two hosts. It reports
// both rates and their ratio (x-raw). The test store copies every block
// into fresh memory and keeps it, which this VM charges dearly for; the
// target (>= 0.7) is for get, measured by peer's BenchmarkGet.
func BenchmarkDownload(b *testing.B) {
	const size, block = 256 << 20, 1 << 20
	root, leaves, blocks := content(b, size/block, block)
	s := newNode(b)
	s.seedWith(root, leaves, blocks, all)
	d := newNode(b)
	d.st.roots[root] = leaves
	if err := d.h.Connect(context.Background(), tcpInfo(s.h)); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, block)
	s.h.SetStreamHandler(rawProto, func(st network.Stream) {
		defer st.Close()
		for range size / block {
			if _, err := st.Write(payload); err != nil {
				return
			}
		}
	})
	b.SetBytes(size)
	b.ReportAllocs()
	var dlTime, rawTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		d.st.mu.Lock()
		clear(d.st.blocks)
		d.st.mu.Unlock()
		b.StartTimer()
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		sess := d.svc.NewSession(root, listProviders{tcpInfo(s.h)})
		if err := sess.Download(ctx, leaves); err != nil {
			b.Fatal(err)
		}
		sess.Close()
		cancel()
		dlTime += time.Since(t0)

		b.StopTimer()
		t0 = time.Now()
		st, err := d.h.NewStream(context.Background(), s.h.ID(), rawProto)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, st)
		if err != nil || n != size {
			b.Fatalf("raw stream: %d bytes, %v", n, err)
		}
		st.Close()
		rawTime += time.Since(t0)
		b.StartTimer()
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/dlTime.Seconds(), "get-MB/s")
	b.ReportMetric(mb/rawTime.Seconds(), "raw-MB/s")
	b.ReportMetric(rawTime.Seconds()/dlTime.Seconds(), "x-raw")
}
