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
	rebuilt := rebuild(t, entries, leaves)["f"]
	if !bytes.Equal(rebuilt, data) {
		t.Fatal("leaves in Walk order do not rebuild the file")
	}
}

// rebuild writes out the files of a walk from its spans, as a download
// does: each leaf where it first appears, each repeat copied from earlier
// bytes. Files are keyed by path ("f" for a root file).
func rebuild(t *testing.T, entries []Entry, leaves map[cid.Cid][]byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, e := range entries {
		if e.Kind != KindFile {
			continue
		}
		name := e.Path
		if name == "" {
			name = "f"
		}
		buf := make([]byte, e.Size)
		files[name] = buf
		var off uint64
		for i, s := range e.Spans {
			if s.Offset != off {
				t.Fatalf("%s: span %d at offset %d, want %d", name, i, s.Offset, off)
			}
			if s.Leaf.Defined() {
				if uint64(len(leaves[s.Leaf])) != s.Size {
					t.Fatalf("%s: span %d: leaf of %d bytes, span says %d", name, i, len(leaves[s.Leaf]), s.Size)
				}
				copy(buf[off:], leaves[s.Leaf])
			} else {
				src := s.SrcPath
				if src == "" {
					src = "f"
				}
				copy(buf[off:off+s.Size], files[src][s.SrcOffset:s.SrcOffset+s.Size])
			}
			off += s.Size
		}
		if off != e.Size {
			t.Fatalf("%s: spans cover %d of %d bytes", name, off, e.Size)
		}
	}
	return files
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

// Verified leaves the hashing to get (a store that verifies, or a
// session that did) and checks the rest as before.
func TestWalkVerifiedChecksAllButTheHash(t *testing.T) {
	ctx := context.Background()
	data := randBytes(1<<20, 10)
	root := rawCID(data)
	// A getter that lies is believed: the caller vouched for it.
	short := func(context.Context, cid.Cid) ([]byte, error) { return data[1:], nil }
	st, err := Stat(ctx, root, short, Verified())
	if err != nil || st.Size != uint64(len(data)-1) {
		t.Fatalf("Stat(Verified) of a raw root = %+v, %v; want its %d bytes unhashed", st, err, len(data)-1)
	}
	if _, err := Stat(ctx, root, short); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Stat without Verified: %v, want ErrHashMismatch", err)
	}
	// Names, and blocks that do not decode, are refused all the same.
	c, dir := dirNode(t, Link{Name: "..", CID: rawCID([]byte("x")), Size: 1})
	get := func(context.Context, cid.Cid) ([]byte, error) { return dir, nil }
	if err := Walk(ctx, c, get, func(Entry) error { return nil }, Verified()); !errors.Is(err, ErrUnsafeName) {
		t.Errorf("Walk(Verified) of a folder with an entry \"..\": %v, want ErrUnsafeName", err)
	}
	junk := func(context.Context, cid.Cid) ([]byte, error) { return []byte{0xff, 0xff}, nil }
	if err := Leaves(ctx, c, junk, func(cid.Cid) error { return nil }, Verified()); !errors.Is(err, ErrMalformed) {
		t.Errorf("Leaves(Verified) of a block that does not decode: %v, want ErrMalformed", err)
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

// A one-leaf file (a raw root) is read once per walk: it is the whole
// file, up to a MiB that the getter reads and the walker hashes.
func TestWalkReadsARawRootOnce(t *testing.T) {
	data := randBytes(1<<20, 9)
	root := rawCID(data)
	gets := 0
	get := func(_ context.Context, c cid.Cid) ([]byte, error) { gets++; return data, nil }
	var entries []Entry
	if err := Walk(context.Background(), root, get, func(e Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if gets != 1 {
		t.Errorf("Walk read the raw root %d times, want once", gets)
	}
	if len(entries) != 1 || entries[0].Kind != KindFile || entries[0].Size != uint64(len(data)) ||
		len(entries[0].Spans) != 1 || !entries[0].Spans[0].Leaf.Equals(root) {
		t.Fatalf("entries %+v, want one file of %d bytes whose one leaf is the root", entries, len(data))
	}
	// A bad root is still refused.
	bad := func(_ context.Context, c cid.Cid) ([]byte, error) { return data[1:], nil }
	if err := Walk(context.Background(), root, bad, func(Entry) error { return nil }); err == nil {
		t.Fatal("Walk accepted bytes that do not hash to the root")
	}
}
