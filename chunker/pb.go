package chunker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/boxo/ipld/unixfs"
	dagpb "github.com/ipld/go-codec-dagpb"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// Decoding goes through the libraries Kubo itself uses: go-codec-dagpb for
// the dag-pb envelope (strict: each field at most once and contiguous,
// PBLink fields in order, no unknown fields) and boxo's UnixFS protobuf for
// the Data message inside it. Encoding stays hand-written (the schemas are
// tiny and the output is canonical dag-pb); FuzzDecode checks it against
// go-codec-dagpb.

// UnixFS Data.Type values (boxo's unixfs/pb Data_DataType).
const (
	pbRaw       = 0
	pbDirectory = 1
	pbFile      = 2
	pbMetadata  = 3
	pbSymlink   = 4
	pbHAMTShard = 5
)

// maxNodeLinks bounds the links one decoded node may have. A dag-pb block
// of MaxBlockSize holds at most ~2 MiB / 38 bytes of links anyway.
const maxNodeLinks = MaxBlockSize / 36

// ErrMalformed is returned by Decode for a block that is not valid dag-pb,
// UnixFS or raw data under its CID's codec.
var ErrMalformed = errors.New("malformed block")

func appendTag(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<3|wire))
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendTag(b, field, 2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendVarintField(b []byte, field int, v uint64) []byte {
	b = appendTag(b, field, 0)
	return binary.AppendUvarint(b, v)
}

// encodeNode encodes a dag-pb node: links first, then data (canonical
// dag-pb order). Every link carries Name (possibly empty) and Tsize, as
// boxo's merkledag writes them.
func encodeNode(links []Link, data []byte) []byte {
	var out []byte
	var lb []byte
	for _, l := range links {
		lb = lb[:0]
		lb = appendBytesField(lb, 1, l.CID.Bytes())
		lb = appendBytesField(lb, 2, []byte(l.Name))
		lb = appendVarintField(lb, 3, l.Size)
		out = appendBytesField(out, 2, lb)
	}
	if data != nil {
		out = appendBytesField(out, 1, data)
	}
	return out
}

// encodeFileData encodes UnixFS Data for a file node over children of the
// given content sizes.
func encodeFileData(blockSizes []uint64) []byte {
	var total uint64
	for _, s := range blockSizes {
		total += s
	}
	b := appendVarintField(nil, 1, pbFile)
	b = appendVarintField(b, 3, total)
	for _, s := range blockSizes {
		b = appendVarintField(b, 4, s)
	}
	return b
}

// encodeSymlinkData encodes UnixFS Data for a symlink.
func encodeSymlinkData(target string) []byte {
	b := appendVarintField(nil, 1, pbSymlink)
	return appendBytesField(b, 2, []byte(target))
}

// countField counts the values of field num in the protobuf message b
// without allocating: one per occurrence or, if varints is set, one per
// varint occurrence and one per varint inside a packed occurrence. The
// library decoders that run after it would otherwise build a node or
// append a value for each of up to len(b)/2 tiny repeated fields before a
// count could be checked. It stops at the first field it cannot read; the
// decoder then reports that one.
func countField(b []byte, num protowire.Number, varints bool) int {
	n := 0
	for len(b) > 0 {
		f, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		b = b[l:]
		if f == num && varints && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				break
			}
			for _, c := range v {
				if c < 0x80 { // the last byte of a varint
					n++
				}
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(f, typ, b)
		if l < 0 {
			break
		}
		b = b[l:]
		if f == num && (!varints || typ == protowire.VarintType) {
			n++
		}
	}
	return n
}

// decodePB parses a dag-pb node with go-codec-dagpb into its links and
// data (nil if absent). Every link must carry a CID that CheckCID accepts
// and a UTF-8 name.
func decodePB(block []byte) (links []Link, data []byte, err error) {
	if countField(block, 2, false) > maxNodeLinks {
		return nil, nil, fmt.Errorf("%w: too many links", ErrMalformed)
	}
	nb := dagpb.Type.PBNode.NewBuilder()
	if err := dagpb.DecodeBytes(nb, block); err != nil {
		return nil, nil, fmt.Errorf("%w: dag-pb: %v", ErrMalformed, err)
	}
	pn, ok := nb.Build().(dagpb.PBNode)
	if !ok {
		return nil, nil, fmt.Errorf("%w: dag-pb: unexpected node type", ErrMalformed)
	}
	pl := pn.FieldLinks()
	if pl.Length() > 0 {
		links = make([]Link, 0, pl.Length())
	}
	for it := pl.Iterator(); !it.Done(); {
		_, l := it.Next()
		cl, ok := l.FieldHash().Link().(cidlink.Link)
		if !ok {
			return nil, nil, fmt.Errorf("%w: dag-pb: link is not a CID", ErrMalformed)
		}
		if err := CheckCID(cl.Cid); err != nil {
			return nil, nil, fmt.Errorf("link %d: %w", len(links), err)
		}
		lk := Link{CID: cl.Cid}
		if name := l.FieldName(); name.Exists() {
			lk.Name = name.Must().String()
			if !utf8.ValidString(lk.Name) {
				return nil, nil, fmt.Errorf("%w: link name is not UTF-8", ErrMalformed)
			}
		}
		if ts := l.FieldTsize(); ts.Exists() {
			// go-codec-dagpb keeps the uint64 varint in an int64.
			lk.Size = uint64(ts.Must().Int())
		}
		links = append(links, lk)
	}
	if d := pn.FieldData(); d.Exists() {
		data = d.Must().Bytes()
		if data == nil {
			data = []byte{}
		}
	}
	return links, data, nil
}

// unixfsData is the decoded UnixFS Data message.
type unixfsData struct {
	typ        int
	data       []byte
	fileSize   uint64
	blockSizes []uint64
	fanout     uint64
	hashType   uint64
}

// decodeUnixFS parses the UnixFS Data message of a node with maxBlockSizes
// links, with boxo's protobuf (Type is required; mode, mtime and unknown
// fields are ignored).
func decodeUnixFS(b []byte, maxBlockSizes int) (unixfsData, error) {
	if countField(b, 4, true) > maxBlockSizes {
		return unixfsData{}, fmt.Errorf("%w: more blocksizes than links", ErrMalformed)
	}
	pd, err := unixfs.FromBytes(b)
	if err != nil {
		return unixfsData{}, fmt.Errorf("%w: UnixFS data: %v", ErrMalformed, err)
	}
	u := unixfsData{
		typ:        int(pd.GetType()),
		data:       pd.GetData(),
		fileSize:   pd.GetFilesize(),
		blockSizes: pd.GetBlocksizes(),
		fanout:     pd.GetFanout(),
		hashType:   pd.GetHashType(),
	}
	if len(u.blockSizes) > maxBlockSizes {
		return u, fmt.Errorf("%w: more blocksizes than links", ErrMalformed)
	}
	return u, nil
}
