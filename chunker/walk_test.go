package chunker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestWalkOffsets(t *testing.T) {
	data := randBytes(3<<20+100, 5)
	blocks := map[cid.Cid][]byte{}
	leaves := map[cid.Cid][]byte{}
	s := &leafSink{collectSink{blocks}, leaves}
	res, err := AddReader(context.Background(), bytes.NewReader(data), "f", Options{ChunkSize: 1024}, s)
	if err != nil {
		t.Fatal(err)
	}
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
	var entries []Entry
	if err := Walk(context.Background(), res.CID, get, func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Kind != KindFile || entries[0].Size != uint64(len(data)) {
		t.Fatalf("entries %+v", entries)
	}
	var rebuilt []byte
	for i, l := range entries[0].Leaves {
		if l.Offset != uint64(len(rebuilt)) {
			t.Fatalf("leaf %d at offset %d, want %d", i, l.Offset, len(rebuilt))
		}
		rebuilt = append(rebuilt, leaves[l.CID]...)
	}
	if !bytes.Equal(rebuilt, data) {
		t.Fatal("leaves in Walk order do not rebuild the file")
	}
}

type leafSink struct {
	collectSink
	leaves map[cid.Cid][]byte
}

func (s *leafSink) Leaf(_ string, _ int64, c cid.Cid, d []byte) error {
	s.leaves[c] = append([]byte(nil), d...)
	return nil
}

// dirNode builds a directory block by hand, as a hostile peer could.
func dirNode(t *testing.T, links ...Link) (cid.Cid, []byte) {
	data := encodeNode(links, []byte{0x08, pbDirectory})
	c, err := pbPrefix.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c, data
}

func TestWalkRefusesUnsafeNames(t *testing.T) {
	leaf := rawCID([]byte("x"))
	for _, name := range []string{"..", ".", "", "a/b", `a\b`, "nul\x00", "../../etc/passwd"} {
		c, data := dirNode(t, Link{Name: name, CID: leaf, Size: 1})
		get := func(context.Context, cid.Cid) ([]byte, error) { return data, nil }
		err := Walk(context.Background(), c, get, func(Entry) error { return nil })
		if !errors.Is(err, ErrUnsafeName) {
			t.Errorf("name %q: err = %v, want ErrUnsafeName", name, err)
		}
	}
}

func TestWalkRejectsBadBlocks(t *testing.T) {
	c, data := dirNode(t)
	bad := append([]byte(nil), data...)
	bad[len(bad)-1] ^= 1
	get := func(context.Context, cid.Cid) ([]byte, error) { return bad, nil }
	if err := Walk(context.Background(), c, get, func(Entry) error { return nil }); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("err = %v, want ErrHashMismatch", err)
	}
}

func TestSymlinksAndSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "target"), []byte("t"), 0o644)
	os.Symlink("target", filepath.Join(dir, "link"))
	blocks := map[cid.Cid][]byte{}
	res, err := AddPath(context.Background(), dir, Options{}, &collectSink{blocks})
	if err != nil {
		t.Fatal(err)
	}
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { return blocks[c], nil }
	var link *Entry
	Walk(context.Background(), res.CID, get, func(e Entry) error {
		if e.Kind == KindSymlink {
			link = &e
		}
		return nil
	})
	if link == nil || link.Path != "link" || link.Target != "target" {
		t.Fatalf("symlink entry %+v", link)
	}
	// A symlink given as the argument is followed.
	fr, err := AddPath(context.Background(), filepath.Join(dir, "link"), Options{}, Discard)
	if err != nil || fr.CID != rawCID([]byte("t")) {
		t.Fatalf("symlink argument: %v %v", fr.CID, err)
	}
	if _, err := AddPath(context.Background(), "/dev/null", Options{}, Discard); !errors.Is(err, ErrUnsupportedFile) {
		t.Fatalf("device: %v", err)
	}
	if _, err := AddPath(context.Background(), filepath.Join(dir, "nope"), Options{}, Discard); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{ChunkSize: -1}, {ChunkSize: MaxChunkSize + 1}, {Chunker: "rabin"}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if (Options{Chunker: ChunkerBuzhash, ChunkSize: 4096}).Validate() != nil {
		t.Error("valid options refused")
	}
}
