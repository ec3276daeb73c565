package chunker

import (
	"bytes"
	"context"
	"testing"

	"github.com/ipfs/go-cid"
)

// FuzzDecode: the dag-pb/UnixFS decoder never panics, and what it accepts
// as a file node re-encodes (links + blocksizes) to the same bytes when it
// was written in our canonical form.
func FuzzDecode(f *testing.F) {
	seeds := map[cid.Cid][]byte{}
	sink := collectSink{blocks: seeds}
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	addBytes(f, data, 1024, &sink)
	f.Add(encodeNode(nil, encodeSymlinkData("../x")), true)
	f.Add([]byte{0x0a, 0x02, 0x08, 0x01}, true) // empty directory
	f.Add([]byte{0xff}, true)
	f.Add([]byte("raw bytes"), false)
	for _, b := range seeds {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, pb bool) {
		prefix := rawPrefix
		if pb {
			prefix = pbPrefix
		}
		c, err := prefix.Sum(raw)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Decode(c, raw)
		if err != nil {
			return
		}
		if n.Kind == KindFile && len(n.Links) > 0 && len(n.Data) == 0 {
			if again := encodeNode(n.Links, encodeFileData(n.BlockSizes)); string(again) == string(raw) {
				return
			}
			// Accepted but not canonical (field order, packed sizes):
			// decoding the canonical form must give the same node.
			canon := encodeNode(n.Links, encodeFileData(n.BlockSizes))
			cc, _ := pbPrefix.Sum(canon)
			m, err := Decode(cc, canon)
			if err != nil || m.FileSize != n.FileSize || len(m.Links) != len(n.Links) {
				t.Fatalf("canonical re-encoding decodes differently: %v", err)
			}
		}
		// Walk over a single block never panics either.
		Walk(context.Background(), c, func(context.Context, cid.Cid) ([]byte, error) { return raw, nil }, func(Entry) error { return nil })
	})
}

type collectSink struct{ blocks map[cid.Cid][]byte }

func (s *collectSink) Leaf(string, int64, cid.Cid, []byte) error { return nil }
func (s *collectSink) Node(c cid.Cid, d []byte) error {
	s.blocks[c] = append([]byte(nil), d...)
	return nil
}
func (s *collectSink) File(string, cid.Cid, int64) error { return nil }

// addBytes adds data with the given chunk size into s.
func addBytes(tb testing.TB, data []byte, chunk int, s Sink) Result {
	tb.Helper()
	res, err := AddReader(context.Background(), bytes.NewReader(data), "x", Options{ChunkSize: chunk}, s)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}
