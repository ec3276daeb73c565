package chunker

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	dagpb "github.com/ipld/go-codec-dagpb"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// refNode is a dag-pb node as go-codec-dagpb decodes it into plain
// (untyped) IPLD nodes: the reference FuzzDecode holds Decode to.
type refNode struct {
	node  datamodel.Node
	links []Link
	data  []byte // nil if absent
	// canonical is set when every link has Name and Tsize, as our encoder
	// writes them.
	canonical bool
}

// refDecode decodes block with go-codec-dagpb alone.
func refDecode(block []byte) (*refNode, error) {
	nb := basicnode.Prototype.Map.NewBuilder()
	if err := dagpb.DecodeBytes(nb, block); err != nil {
		return nil, err
	}
	r := &refNode{node: nb.Build(), canonical: true}
	ln, err := r.node.LookupByString("Links")
	if err != nil {
		return nil, err
	}
	for it := ln.ListIterator(); !it.Done(); {
		_, l, err := it.Next()
		if err != nil {
			return nil, err
		}
		h, err := l.LookupByString("Hash")
		if err != nil {
			return nil, err
		}
		hl, err := h.AsLink()
		if err != nil {
			return nil, err
		}
		var lk Link
		lk.CID = hl.(cidlink.Link).Cid
		if name, err := l.LookupByString("Name"); err == nil {
			if lk.Name, err = name.AsString(); err != nil {
				return nil, err
			}
		} else {
			r.canonical = false
		}
		if ts, err := l.LookupByString("Tsize"); err == nil {
			v, err := ts.AsInt()
			if err != nil {
				return nil, err
			}
			lk.Size = uint64(v)
		} else {
			r.canonical = false
		}
		r.links = append(r.links, lk)
	}
	if d, err := r.node.LookupByString("Data"); err == nil {
		if r.data, err = d.AsBytes(); err != nil {
			return nil, err
		}
		if r.data == nil {
			r.data = []byte{}
		}
	}
	return r, nil
}

// sameLinks reports whether a and b hold the same links (nil and empty
// alike).
func sameLinks(a, b []Link) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Size != b[i].Size || !a[i].CID.Equals(b[i].CID) {
			return false
		}
	}
	return true
}

// sameNode reports whether two decoded nodes are equal.
func sameNode(a, b *Node) bool {
	return a.Kind == b.Kind && a.FileSize == b.FileSize && a.Fanout == b.Fanout &&
		bytes.Equal(a.Data, b.Data) && sameLinks(a.Links, b.Links) &&
		len(a.BlockSizes) == len(b.BlockSizes) && (len(a.BlockSizes) == 0 || reflect.DeepEqual(a.BlockSizes, b.BlockSizes))
}

// FuzzDecode is a differential test of Decode against go-codec-dagpb:
//
//   - Decode never panics;
//   - its dag-pb layer (decodePB) accepts a block if and only if
//     go-codec-dagpb does and every link passes CheckCID with a UTF-8
//     name, within maxNodeLinks, and then gives the same links (hash,
//     name, Tsize) and Data;
//   - a node Decode accepts re-encodes with our encoder to bytes that
//     go-codec-dagpb decodes to the same links and Data, that Decode
//     decodes to the same Node, and that go-codec-dagpb's own encoder
//     writes identically when the links are sorted by name; and when the
//     input already was in that canonical form, our encoder gives it
//     back byte for byte.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.data, s.pb)
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
		if !pb {
			if err != nil && len(raw) <= MaxBlockSize || err == nil && !bytes.Equal(n.Data, raw) {
				t.Fatalf("raw block: %v", err)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		checkPBLayer(t, raw)
		// Walk over a single block never panics either.
		Walk(context.Background(), c, func(context.Context, cid.Cid) ([]byte, error) { return raw, nil }, func(Entry) error { return nil })
		if err != nil {
			return
		}
		links, pbData, err := decodePB(raw)
		if err != nil {
			t.Fatalf("Decode accepted what decodePB refuses: %v", err)
		}
		if !sameLinks(links, n.Links) {
			t.Fatal("Decode and decodePB give different links")
		}
		canon := encodeNode(n.Links, pbData)
		ref, err := refDecode(canon)
		if err != nil {
			t.Fatalf("go-codec-dagpb refuses our encoding: %v", err)
		}
		if !sameLinks(ref.links, n.Links) || !bytes.Equal(ref.data, pbData) {
			t.Fatal("go-codec-dagpb decodes our encoding differently")
		}
		cc, _ := pbPrefix.Sum(canon)
		m, err := Decode(cc, canon)
		if err != nil || !sameNode(m, n) {
			t.Fatalf("our encoding decodes differently: %v", err)
		}
		sorted := slices.IsSortedFunc(n.Links, func(a, b Link) int { return cmpString(a.Name, b.Name) })
		big := slices.ContainsFunc(n.Links, func(l Link) bool { return l.Size > 1<<63-1 })
		if sorted && !big {
			again, err := dagpb.AppendEncode(nil, ref.node)
			if err != nil {
				t.Fatalf("go-codec-dagpb cannot encode it: %v", err)
			}
			if !bytes.Equal(again, canon) {
				t.Fatalf("go-codec-dagpb encodes\n%x\nwe encode\n%x", again, canon)
			}
			if r, _ := refDecode(raw); r.canonical && bytes.Equal(canonicalOf(t, raw), raw) && !bytes.Equal(canon, raw) {
				t.Fatalf("canonical input\n%x\nre-encodes to\n%x", raw, canon)
			}
		}
		if n.Kind == KindFile && len(n.Links) > 0 && len(n.Data) == 0 {
			// A file node re-encoded from links and blocksizes alone.
			fb := encodeNode(n.Links, encodeFileData(n.BlockSizes))
			fc, _ := pbPrefix.Sum(fb)
			m, err := Decode(fc, fb)
			if err != nil || !sameNode(m, n) {
				t.Fatalf("file node re-encoded decodes differently: %v", err)
			}
		}
	})
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// canonicalOf is go-codec-dagpb's re-encoding of block.
func canonicalOf(t *testing.T, block []byte) []byte {
	r, err := refDecode(block)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dagpb.AppendEncode(nil, r.node)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPBLayer checks decodePB on raw against go-codec-dagpb.
func checkPBLayer(t *testing.T, raw []byte) {
	t.Helper()
	links, data, err := decodePB(raw)
	ref, refErr := refDecode(raw)
	if refErr != nil {
		if err == nil {
			t.Fatalf("decodePB accepts what go-codec-dagpb refuses (%v)", refErr)
		}
		return
	}
	want := len(ref.links) <= maxNodeLinks
	for _, l := range ref.links {
		if CheckCID(l.CID) != nil || !utf8.ValidString(l.Name) {
			want = false
		}
	}
	if !want {
		if err == nil {
			t.Fatal("decodePB accepts a link it should refuse")
		}
		return
	}
	if err != nil {
		t.Fatalf("decodePB refuses what go-codec-dagpb accepts: %v", err)
	}
	if !sameLinks(links, ref.links) {
		t.Fatalf("links %+v, go-codec-dagpb gives %+v", links, ref.links)
	}
	if (data == nil) != (ref.data == nil) || !bytes.Equal(data, ref.data) {
		t.Fatalf("data %x, go-codec-dagpb gives %x", data, ref.data)
	}
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
