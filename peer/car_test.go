package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"

	"github.com/p2pshare/p2pshare/chunker"
)

type carBlock struct {
	c    cid.Cid
	data []byte
}

// readCAR reads a CAR with go-car's reader, checking every block against
// its CID.
func readCAR(t testing.TB, data []byte) ([]cid.Cid, []carBlock) {
	t.Helper()
	br, err := car.NewBlockReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []carBlock
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := chunker.Verify(b.Cid(), b.RawData()); err != nil {
			t.Fatalf("block %d: %v", len(out), err)
		}
		out = append(out, carBlock{b.Cid(), b.RawData()})
	}
	return br.Roots, out
}

// writeCAR writes a CARv1 of roots and blocks as given, trusting them.
func writeCAR(t testing.TB, roots []cid.Cid, blocks []carBlock) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := storage.NewWritable(&buf, roots, car.WriteAsCarV1(true), car.AllowDuplicatePuts(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if err := w.Put(context.Background(), b.c.KeyString(), b.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// checkDepthFirst checks that blocks are root first, each block once, and
// that every other block is linked from a block before it: a depth-first
// pre-order over the DAG. It returns the number of distinct blocks the
// DAG has, walked from the root.
func checkDepthFirst(t *testing.T, root cid.Cid, blocks []carBlock) {
	t.Helper()
	if len(blocks) == 0 || !blocks[0].c.Equals(root) {
		t.Fatalf("first block is not the root")
	}
	seen := map[cid.Cid]bool{}
	linked := map[cid.Cid]bool{root: true}
	var expect []cid.Cid // the pre-order, recomputed
	byCID := map[cid.Cid][]byte{}
	for _, b := range blocks {
		if seen[b.c] {
			t.Fatalf("block %s appears twice", b.c)
		}
		if !linked[b.c] {
			t.Fatalf("block %s comes before any block that links to it", b.c)
		}
		seen[b.c] = true
		byCID[b.c] = b.data
		if b.c.Prefix().Codec == uint64(multicodec.DagPb) {
			n, err := chunker.Decode(b.c, b.data)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range n.Links {
				linked[l.CID] = true
			}
		}
	}
	done := map[cid.Cid]bool{}
	var visit func(c cid.Cid)
	visit = func(c cid.Cid) {
		if done[c] {
			return
		}
		done[c] = true
		expect = append(expect, c)
		if c.Prefix().Codec == uint64(multicodec.DagPb) {
			n, err := chunker.Decode(c, byCID[c])
			if err != nil {
				t.Fatalf("missing or bad block %s: %v", c, err)
			}
			for _, l := range n.Links {
				visit(l.CID)
			}
		}
	}
	visit(root)
	if len(expect) != len(blocks) {
		t.Fatalf("CAR holds %d blocks, the DAG %d", len(blocks), len(expect))
	}
	for i := range expect {
		if !expect[i].Equals(blocks[i].c) {
			t.Fatalf("block %d is %s, depth-first order wants %s", i, blocks[i].c, expect[i])
		}
	}
}

// TestExportImportRoundTrip exports a folder (with a repeated file, so
// repeated leaves) from one node, imports it into a fresh node, and gets
// it from that node alone.
func TestExportImportRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := filepath.Join(t.TempDir(), "folder")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := writeRandom(t, filepath.Join(src, "a.bin"), 700<<10+3, 1)
	if err := os.WriteFile(filepath.Join(src, "sub", "copy.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	small := writeRandom(t, filepath.Join(src, "small.txt"), 10, 2)

	a := openTestRepo(t) // indexed in place: leaves are read from the files
	res, err := a.Add(ctx, src, AddOptions{Options: chunker.Options{ChunkSize: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := a.Export(ctx, res.CID, &buf)
	if err != nil {
		t.Fatal(err)
	}
	roots, blocks := readCAR(t, buf.Bytes())
	if len(roots) != 1 || !roots[0].Equals(res.CID) {
		t.Fatalf("CAR roots %v, want [%s]", roots, res.CID)
	}
	if st.Blocks != len(blocks) || st.Bytes != int64(buf.Len()) {
		t.Fatalf("stats %+v, CAR has %d blocks in %d bytes", st, len(blocks), buf.Len())
	}
	checkDepthFirst(t, res.CID, blocks)

	// b imports it and is the only node that has it.
	b := startNode(t, NodeOptions{})
	carPath := filepath.Join(t.TempDir(), "x.car")
	if err := os.WriteFile(carPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ir, err := b.Import(ctx, carPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(ir.Roots) != 1 || ir.Roots[0].CID != res.CID.String() || ir.Roots[0].Size != uint64(res.Size) || !ir.Roots[0].Dir {
		t.Fatalf("import result %+v, want root %s of %d bytes, a folder", ir, res.CID, res.Size)
	}
	ls, err := b.Repo.List(ctx)
	if err != nil || len(ls) != 1 || ls[0].CID != res.CID.String() || ls[0].State != StateComplete || ls[0].Size != uint64(res.Size) {
		t.Fatalf("ls after import: %+v (%v)", ls, err)
	}
	// Exported again from b: the same bytes.
	var again bytes.Buffer
	if _, err := b.Repo.Export(ctx, res.CID, &again); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatalf("export after import differs (err %v)", err)
	}

	c := startNode(t, NodeOptions{}, b)
	out := filepath.Join(t.TempDir(), "got")
	if _, err := c.Get(ctx, res.CID, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string][]byte{"a.bin": data, "sub/copy.bin": data, "small.txt": small} {
		got, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s from the importing node differs (err %v)", rel, err)
		}
	}

	// Importing twice changes nothing and says so.
	ir, err = b.Repo.Import(ctx, carPath)
	if err != nil || !ir.Roots[0].Shared || ir.New != 0 {
		t.Fatalf("second import: %+v, %v", ir, err)
	}
	// rm removes the imported blocks again.
	if err := b.Remove(ctx, res.CID); err != nil {
		t.Fatal(err)
	}
	if n := countBlocks(t, b.Repo); n != 0 {
		t.Fatalf("%d blocks left after rm of the imported root", n)
	}
}

func countBlocks(t *testing.T, r *Repo) int {
	t.Helper()
	res, err := r.index.ds.Query(context.Background(), queryBlocks)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	n := 0
	for e := range res.Next() {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		n++
	}
	return n
}

// TestExportKuboVectors exports each reference input of shared/vectors
// and checks the CAR's root is the CID Kubo computed, its blocks verify,
// and it imports into a fresh repo under that root.
func TestExportKuboVectors(t *testing.T) {
	const vectors = "../../shared/vectors"
	f, err := os.Open(filepath.Join(vectors, "expected.tsv"))
	if err != nil {
		t.Fatalf("reference vectors missing (%v): the shared/ folder must sit beside the repo", err)
	}
	defer f.Close()
	dir := t.TempDir()
	if out, err := execCommand("python3", filepath.Join(vectors, "make_corpus.py"), filepath.Join(vectors, "spec.txt"), dir); err != nil {
		t.Fatalf("building corpus: %v\n%s", err, out)
	}
	ctx := context.Background()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if strings.HasPrefix(sc.Text(), "#") || len(cols) != 4 {
			continue
		}
		name, flags, want := cols[0], cols[1], cols[2]
		var opts chunker.Options
		for _, fl := range strings.Fields(flags) {
			switch {
			case fl == "--hidden":
				opts.Hidden = true
			case fl == "--chunker=buzhash":
				opts.Chunker = chunker.ChunkerBuzhash
			case strings.HasPrefix(fl, "--chunker=size-"):
				opts.ChunkSize = atoi(t, strings.TrimPrefix(fl, "--chunker=size-"))
			}
		}
		n++
		t.Run(name+" "+flags, func(t *testing.T) {
			r := openTestRepo(t)
			res, err := r.Add(ctx, filepath.Join(dir, name), AddOptions{Options: opts})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := r.Export(ctx, res.CID, &buf); err != nil {
				t.Fatal(err)
			}
			roots, blocks := readCAR(t, buf.Bytes())
			if len(roots) != 1 || roots[0].String() != want {
				t.Fatalf("CAR root %v, Kubo says %s", roots, want)
			}
			checkDepthFirst(t, roots[0], blocks)
			ir, err := openTestRepo(t).ImportReader(ctx, bytes.NewReader(buf.Bytes()))
			if err != nil || ir.Roots[0].CID != want {
				t.Fatalf("import: %+v, %v", ir, err)
			}
		})
	}
	if n < 8 {
		t.Fatalf("only %d vectors read", n)
	}
}

// hostileCARs returns CARs that import must refuse, built from a good
// one: a small file of several leaves.
func hostileCARs(t testing.TB) map[string][]byte {
	_, hostile := sampleCARs(t)
	return hostile
}

// sampleCARs returns a good CAR and hostile ones made from it.
func sampleCARs(t testing.TB) ([]byte, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	r := openTestRepo(t)
	path := filepath.Join(t.TempDir(), "f")
	content := make([]byte, 5000)
	for i := range content {
		content[i] = byte(i * 7 % 251)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Add(ctx, path, AddOptions{Options: chunker.Options{ChunkSize: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := r.Export(ctx, res.CID, &buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	roots, blocks := readCAR(t, good)
	header := writeCAR(t, roots, nil)

	bad := append([]carBlock(nil), blocks...)
	bad[2] = carBlock{bad[2].c, append([]byte("x"), bad[2].data[1:]...)}
	sha1, _ := mh.Sum([]byte("x"), mh.SHA1, -1)
	short, _ := mh.Sum([]byte("x"), mh.SHA2_256, 20)
	other := cid.NewCidV1(cid.Raw, mustSum(t, []byte("not here")))
	huge := binary.AppendUvarint(nil, 1<<40)
	return good, map[string][]byte{
		"empty":                  {},
		"garbage":                []byte("this is not a CAR at all, just text"),
		"truncated header":       good[:len(header)-3],
		"truncated block":        good[:len(good)-100],
		"huge header length":     append(huge, good[len(header):]...),
		"huge section length":    append(append(append([]byte(nil), header...), huge...), 1, 2, 3),
		"block not its CID":      writeCAR(t, roots, bad),
		"root missing":           writeCAR(t, roots, blocks[1:]),
		"leaf missing":           writeCAR(t, roots, blocks[:len(blocks)-1]),
		"second root missing":    writeCAR(t, []cid.Cid{roots[0], other}, blocks),
		"no root":                writeCAR(t, nil, blocks),
		"sha1 root":              writeCAR(t, []cid.Cid{cid.NewCidV1(cid.Raw, sha1)}, nil),
		"truncated sha256 block": writeCAR(t, roots, append(blocks, carBlock{cid.NewCidV1(cid.Raw, short), []byte("x")})),
	}
}

func mustSum(t testing.TB, data []byte) mh.Multihash {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestImportHostile checks that each hostile CAR is refused with one
// line wrapping ErrBadCAR and leaves neither a root nor a block behind.
func TestImportHostile(t *testing.T) {
	ctx := context.Background()
	r := openTestRepo(t)
	for name, data := range hostileCARs(t) {
		t.Run(name, func(t *testing.T) {
			res, err := r.ImportReader(ctx, bytes.NewReader(data))
			if !errors.Is(err, ErrBadCAR) {
				t.Fatalf("import: %+v, %v; want ErrBadCAR", res, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 300 {
				t.Errorf("error is not one short line: %q", msg)
			}
			t.Logf("%s", err)
			if ls, err := r.List(ctx); err != nil || len(ls) != 0 {
				t.Fatalf("ls after a refused import: %+v, %v", ls, err)
			}
			if n := countBlocks(t, r); n != 0 {
				t.Fatalf("%d blocks left after a refused import", n)
			}
		})
	}
}

// TestExportRefuses checks export's errors: a CID the repo does not hold.
func TestExportRefuses(t *testing.T) {
	r := openTestRepo(t)
	c := cid.NewCidV1(cid.Raw, mustSum(t, []byte("absent")))
	var buf bytes.Buffer
	if _, err := r.Export(context.Background(), c, &buf); !errors.Is(err, ErrNotShared) || buf.Len() != 0 {
		t.Fatalf("export of an absent CID: %v, %d bytes written", err, buf.Len())
	}
}
