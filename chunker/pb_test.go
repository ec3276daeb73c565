package chunker

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ipfs/boxo/verifcid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multicodec"
	mh "github.com/multiformats/go-multihash"
)

type fuzzSeed struct {
	data []byte
	pb   bool
}

// pbBlock concatenates protobuf fields into a block.
func pbBlock(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

func dataField(d []byte) []byte { return appendBytesField(nil, 1, d) }

func linkField(c cid.Cid, name string, size uint64) []byte {
	return appendBytesField(nil, 2, encodeLink(c, name, size))
}

func encodeLink(c cid.Cid, name string, size uint64) []byte {
	b := appendBytesField(nil, 1, c.Bytes())
	b = appendBytesField(b, 2, []byte(name))
	return appendVarintField(b, 3, size)
}

var dirData = []byte{0x08, pbDirectory}

func mustCID(t testing.TB, codec multicodec.Code, h mh.Multihash) cid.Cid {
	t.Helper()
	return cid.NewCidV1(uint64(codec), h)
}

func mustSum(t testing.TB, data []byte, code uint64, length int) mh.Multihash {
	t.Helper()
	h, err := mh.Sum(data, code, length)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// weakCIDs are link targets Decode must refuse.
func weakCIDs(t testing.TB) map[string]cid.Cid {
	leaf := []byte("leaf")
	md5sum := md5.Sum(leaf)
	md5h, err := mh.Encode(md5sum[:], mh.MD5)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]cid.Cid{
		"sha2-256 cut to 4 bytes":  mustCID(t, multicodec.Raw, mustSum(t, leaf, mh.SHA2_256, 4)),
		"sha2-256 cut to 20 bytes": mustCID(t, multicodec.Raw, mustSum(t, leaf, mh.SHA2_256, 20)),
		"md5":                      mustCID(t, multicodec.Raw, md5h),
		"sha1":                     mustCID(t, multicodec.Raw, mustSum(t, leaf, mh.SHA1, -1)),
		"identity over the bound":  mustCID(t, multicodec.Raw, mustSum(t, bytes.Repeat([]byte{'x'}, MaxIdentityDigestSize+1), mh.IDENTITY, -1)),
	}
}

// fuzzSeeds are FuzzDecode's seeds: blocks our builder writes, and
// hand-made ones a hostile peer could send.
func fuzzSeeds(t testing.TB) []fuzzSeed {
	var seeds []fuzzSeed
	add := func(pb bool, bs ...[]byte) {
		for _, b := range bs {
			seeds = append(seeds, fuzzSeed{b, pb})
		}
	}
	blocks := map[cid.Cid][]byte{}
	sink := collectSink{blocks: blocks}
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	addBytes(t, data, 1024, &sink)
	for _, b := range blocks {
		add(true, b)
	}
	add(true,
		encodeNode(nil, encodeSymlinkData("../x")),
		[]byte{0x0a, 0x02, 0x08, 0x01}, // empty directory
		[]byte{0xff},
		nil,
	)
	add(false, []byte("raw bytes"))

	leaf, _ := rawPrefix.Sum([]byte("leaf"))
	id, _ := cid.Prefix{Version: 1, Codec: uint64(multicodec.Raw), MhType: mh.IDENTITY, MhLength: -1}.Sum([]byte("hi"))
	v0, _ := cid.Prefix{Version: 0, Codec: uint64(multicodec.DagPb), MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte("v0"))
	cbor := cid.NewCidV1(uint64(multicodec.DagCbor), leaf.Hash())
	file := encodeFileData([]uint64{4})
	add(true,
		encodeNode([]Link{{Name: "a", CID: leaf, Size: 4}, {Name: "b", CID: id, Size: 2}, {Name: "c", CID: v0, Size: 9}}, dirData),
		encodeNode([]Link{{Name: "b", CID: leaf}, {Name: "a", CID: leaf}}, dirData),                // unsorted names
		pbBlock(dataField(file), linkField(leaf, "", 4)),                                           // Data before Links
		pbBlock(linkField(leaf, "", 4), dataField(file), linkField(leaf, "", 4)),                   // Links, Data, Links
		pbBlock(linkField(leaf, "", 4), dataField(file), dataField(file)),                          // Data twice
		pbBlock(linkField(leaf, "", 4), dataField(file), appendVarintField(nil, 3, 1)),             // unknown field
		pbBlock(appendBytesField(nil, 2, appendBytesField(nil, 1, leaf.Bytes())), dataField(file)), // Hash only
		pbBlock(appendBytesField(nil, 2, appendVarintField(nil, 3, 4)), dataField(file)),           // Tsize only
		pbBlock(linkField(cbor, "x", 1), dataField(dirData)),
		pbBlock(linkField(leaf, "\xff", 1), dataField(dirData)),
		pbBlock(linkField(leaf, "", 1<<63), dataField(encodeFileData([]uint64{1}))),
		pbBlock(linkField(leaf, "", 4), dataField(append(appendVarintField(nil, 1, pbFile), 0x22, 0x01, 0x04, 0x18, 0x04))), // packed blocksizes
	)
	for _, c := range weakCIDs(t) {
		add(true, pbBlock(linkField(c, "x", 4), dataField(dirData)))
	}
	return seeds
}

func decodeErr(t *testing.T, block []byte) error {
	t.Helper()
	c, err := pbPrefix.Sum(block)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decode(c, block)
	return err
}

func TestDecodeRefusesNonCanonicalDagPB(t *testing.T) {
	leaf, _ := rawPrefix.Sum([]byte("leaf"))
	file := encodeFileData([]uint64{4})
	for name, block := range map[string][]byte{
		"Links, Data, Links":   pbBlock(linkField(leaf, "", 4), dataField(file), linkField(leaf, "", 4)),
		"Data twice":           pbBlock(linkField(leaf, "", 4), dataField(file), dataField(file)),
		"unknown PBNode field": pbBlock(linkField(leaf, "", 4), dataField(file), appendVarintField(nil, 3, 1)),
		"unknown PBLink field": pbBlock(appendBytesField(nil, 2, appendVarintField(encodeLink(leaf, "", 4), 4, 1)), dataField(file)),
		"Name before Hash": pbBlock(appendBytesField(nil, 2, append(appendBytesField(nil, 2, nil),
			appendBytesField(nil, 1, leaf.Bytes())...)), dataField(file)),
		"Tsize twice":    pbBlock(appendBytesField(nil, 2, appendVarintField(encodeLink(leaf, "", 4), 3, 4)), dataField(file)),
		"Data as varint": pbBlock(linkField(leaf, "", 4), appendVarintField(nil, 1, 5)),
		"link not a CID": pbBlock(appendBytesField(nil, 2, appendBytesField(nil, 1, []byte{0x01, 0x55, 0x12})), dataField(file)),
		"trailing byte":  pbBlock(linkField(leaf, "", 4), dataField(file), []byte{0x12}),
	} {
		if err := decodeErr(t, block); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v, want ErrMalformed", name, err)
		}
	}
	// The canonical form of the same file node is accepted.
	if err := decodeErr(t, pbBlock(linkField(leaf, "", 4), dataField(file))); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeDataBeforeLinks: Data written before Links is accepted, as
// go-codec-dagpb v1.7.0 (and so Kubo) accepts it and the UnixFS spec says
// decoders MUST: older IPFS data has blocks in that order. It decodes to
// the same node as the canonical order.
func TestDecodeDataBeforeLinks(t *testing.T) {
	leaf, _ := rawPrefix.Sum([]byte("leaf"))
	file := encodeFileData([]uint64{4})
	canon := pbBlock(linkField(leaf, "", 4), dataField(file))
	swapped := pbBlock(dataField(file), linkField(leaf, "", 4))
	if _, err := refDecode(swapped); err != nil {
		t.Fatalf("go-codec-dagpb refuses it too: %v", err)
	}
	cc, _ := pbPrefix.Sum(canon)
	sc, _ := pbPrefix.Sum(swapped)
	want, err := Decode(cc, canon)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(sc, swapped)
	if err != nil {
		t.Fatal(err)
	}
	if !sameNode(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodeRefusesWeakLinks(t *testing.T) {
	for name, c := range weakCIDs(t) {
		t.Run(name, func(t *testing.T) {
			if err := CheckCID(c); !errors.Is(err, ErrWeakHash) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("CheckCID: %v, want ErrWeakHash", err)
			}
			dir := encodeNode([]Link{{Name: "x", CID: c, Size: 4}}, dirData)
			if err := decodeErr(t, dir); !errors.Is(err, ErrWeakHash) {
				t.Fatalf("Decode of a directory linking to it: %v, want ErrWeakHash", err)
			}
			file := encodeNode([]Link{{CID: c, Size: 4}}, encodeFileData([]uint64{4}))
			if err := decodeErr(t, file); !errors.Is(err, ErrWeakHash) {
				t.Fatalf("Decode of a file node over it: %v, want ErrWeakHash", err)
			}
		})
	}
}

func TestVerifyRefusesWeakHashes(t *testing.T) {
	leaf := []byte("leaf")
	for name, c := range weakCIDs(t) {
		if name == "identity over the bound" {
			continue
		}
		// The data does hash to these CIDs: only the hash is wrong.
		if got, err := c.Prefix().Sum(leaf); err != nil || !got.Equals(c) {
			t.Fatalf("%s: test CID does not match its data: %v", name, err)
		}
		if err := Verify(c, leaf); !errors.Is(err, ErrWeakHash) {
			t.Errorf("%s: Verify gives %v, want ErrWeakHash", name, err)
		}
	}
	// A 4-byte digest collides within seconds: any data of the 2^32
	// tried would do. Verify refuses on the CID alone, whatever the data.
	c := weakCIDs(t)["sha2-256 cut to 4 bytes"]
	if err := Verify(c, []byte("anything")); !errors.Is(err, ErrWeakHash) {
		t.Fatalf("Verify gives %v, want ErrWeakHash", err)
	}
	if err := CheckCID(cid.NewCidV1(uint64(multicodec.Raw), mustSum(t, leaf, mh.SHA2_256, 4))); !errors.Is(err, verifcid.ErrDigestTooSmall) {
		t.Fatalf("verifcid's reason is not kept: %v", err)
	}
}

func TestCheckCIDAccepts(t *testing.T) {
	leaf, _ := rawPrefix.Sum([]byte("leaf"))
	node, _ := pbPrefix.Sum([]byte("node"))
	v0, _ := cid.Prefix{Version: 0, Codec: uint64(multicodec.DagPb), MhType: mh.SHA2_256, MhLength: -1}.Sum([]byte("v0"))
	id := mustCID(t, multicodec.Raw, mustSum(t, bytes.Repeat([]byte{'x'}, MaxIdentityDigestSize), mh.IDENTITY, -1))
	for _, c := range []cid.Cid{leaf, node, v0, id} {
		if err := CheckCID(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	if err := CheckCID(cid.Undef); !errors.Is(err, ErrMalformed) {
		t.Errorf("undefined CID: %v", err)
	}
	cbor := cid.NewCidV1(uint64(multicodec.DagCbor), leaf.Hash())
	if err := CheckCID(cbor); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrWeakHash) {
		t.Errorf("dag-cbor CID: %v, want ErrMalformed for the codec", err)
	}
	dir := encodeNode([]Link{{Name: "x", CID: cbor, Size: 4}}, dirData)
	if err := decodeErr(t, dir); !errors.Is(err, ErrMalformed) {
		t.Errorf("link to dag-cbor: %v, want ErrMalformed", err)
	}
}

func TestIdentityLeaf(t *testing.T) {
	data := []byte("small file")
	c, err := cid.Prefix{Version: 1, Codec: uint64(multicodec.Raw), MhType: mh.IDENTITY, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, data); err != nil {
		t.Fatalf("identity leaf refused: %v", err)
	}
	for _, bad := range [][]byte{[]byte("small filf"), []byte("small fil"), []byte("small file!"), nil} {
		if err := Verify(c, bad); !errors.Is(err, ErrHashMismatch) {
			t.Errorf("Verify(%q): %v, want ErrHashMismatch", bad, err)
		}
	}
	// A directory with an identity entry decodes, and Walk lists it.
	dc, dir := dirNode(t, Link{Name: "f", CID: c, Size: uint64(len(data))})
	if _, err := Decode(dc, dir); err != nil {
		t.Fatal(err)
	}
	get := func(_ context.Context, k cid.Cid) ([]byte, error) {
		if k.Equals(c) {
			return data, nil
		}
		return dir, nil
	}
	var files []string
	err = Walk(context.Background(), dc, get, func(e Entry) error {
		if e.Kind == KindFile {
			files = append(files, e.Path)
		}
		return nil
	})
	if err != nil || len(files) != 1 || files[0] != "f" {
		t.Fatalf("walk: %v %v", files, err)
	}
}

func TestVerifyRefusesWeakRoot(t *testing.T) {
	// A whole DAG under a truncated root hash is refused at the root.
	blocks := map[cid.Cid][]byte{}
	res := addBytes(t, randBytes(5000, 1), 1024, &collectSink{blocks})
	root := blocks[res.CID]
	weak := cid.NewCidV1(uint64(multicodec.DagPb), mustSum(t, root, mh.SHA2_256, 4))
	get := func(_ context.Context, c cid.Cid) ([]byte, error) {
		if c.Equals(weak) {
			return root, nil
		}
		return blocks[c], nil
	}
	if err := Walk(context.Background(), weak, get, func(Entry) error { return nil }); !errors.Is(err, ErrWeakHash) {
		t.Fatalf("Walk: %v, want ErrWeakHash", err)
	}
}

// TestDecodeAllocBounded: a block of tiny repeated fields costs memory in
// proportion to its size, and too many blocksizes are refused before
// they are decoded.
func TestDecodeAllocBounded(t *testing.T) {
	id, _ := cid.Prefix{Version: 1, Codec: uint64(multicodec.Raw), MhType: mh.IDENTITY, MhLength: -1}.Sum(nil)
	links := make([]Link, maxNodeLinks)
	for i := range links {
		links[i] = Link{CID: id}
	}
	manyLinks := encodeNode(links, dirData)
	sizes := appendVarintField(nil, 1, pbFile)
	for len(sizes) < MaxBlockSize-16 {
		sizes = append(sizes, 0x20, 0x01) // blocksizes: 1, unpacked
	}
	packed := appendBytesField(appendVarintField(nil, 1, pbFile), 4, bytes.Repeat([]byte{1}, MaxBlockSize-32))
	for name, tc := range map[string]struct {
		block []byte
		ok    bool
		limit uint64
	}{
		"most links":          {manyLinks, true, 40 * uint64(len(manyLinks))},
		"one link too many":   {encodeNode(append(links, links[0]), dirData), false, 1 << 20},
		"unpacked blocksizes": {encodeNode(nil, sizes), false, 1 << 20},
		"packed blocksizes":   {encodeNode(nil, packed), false, 1 << 20},
	} {
		c, _ := pbPrefix.Sum(tc.block)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Decode(c, tc.block)
		runtime.ReadMemStats(&after)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v", name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tc.limit {
			t.Errorf("%s: %d bytes allocated decoding %d, limit %d", name, got, len(tc.block), tc.limit)
		}
	}
}

// TestDecodeNodesOfAFolder decodes every block of a folder and checks
// each against go-codec-dagpb: same links, and our bytes are its own
// canonical encoding.
func TestDecodeNodesOfAFolder(t *testing.T) {
	dir := t.TempDir()
	for i := range 40 {
		os.WriteFile(filepath.Join(dir, strings.Repeat("n", i+1)), []byte{byte(i)}, 0o644)
	}
	blocks := map[cid.Cid][]byte{}
	if _, err := AddPath(context.Background(), dir, Options{}, &collectSink{blocks}); err != nil {
		t.Fatal(err)
	}
	for c, b := range blocks {
		n, err := Decode(c, b)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		ref, err := refDecode(b)
		if err != nil || !sameLinks(n.Links, ref.links) || !bytes.Equal(canonicalOf(t, b), b) {
			t.Fatalf("%s: go-codec-dagpb disagrees (%v)", c, err)
		}
	}
}
