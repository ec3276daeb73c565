package chunker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"
)

// BenchmarkAdd adds 256 MiB of random bytes with the default profile and,
// in the same iterations, hashes the same bytes with single-threaded
// SHA-256: it reports both rates and their ratio (x-sha256; the target is
// >= 1.0, reachable because leaves are hashed on every core).
func BenchmarkAdd(b *testing.B) {
	data := randBytes(256<<20, 1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var addTime, shaTime time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := AddReader(context.Background(), bytes.NewReader(data), "bench", Options{}, Discard); err != nil {
			b.Fatal(err)
		}
		addTime += time.Since(t0)
		b.StopTimer()
		t0 = time.Now()
		for off := 0; off < len(data); off += DefaultChunkSize {
			sha256.Sum256(data[off:min(off+DefaultChunkSize, len(data))])
		}
		shaTime += time.Since(t0)
		b.StartTimer()
	}
	mb := float64(len(data)) * float64(b.N) / 1e6
	b.ReportMetric(mb/addTime.Seconds(), "add-MB/s")
	b.ReportMetric(mb/shaTime.Seconds(), "sha256-MB/s")
	b.ReportMetric(shaTime.Seconds()/addTime.Seconds(), "x-sha256")
}
