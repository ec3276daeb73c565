package chunker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
)

// The dag-pb and UnixFS protobuf encodings, written by hand: the schemas
// are tiny, and a hand-written decoder is easy to bound (every length is
// checked against the bytes left before anything is allocated).

// UnixFS Data.Type values.
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

// pbReader reads protobuf fields from a byte slice.
type pbReader struct{ b []byte }

func (r *pbReader) varint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrMalformed)
	}
	r.b = r.b[n:]
	return v, nil
}

// field returns the next field number and wire type.
func (r *pbReader) field() (int, int, error) {
	t, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	if t>>3 == 0 || t>>3 > 1<<29 {
		return 0, 0, fmt.Errorf("%w: bad field number", ErrMalformed)
	}
	return int(t >> 3), int(t & 7), nil
}

func (r *pbReader) bytes() ([]byte, error) {
	n, err := r.varint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: length %d past the end", ErrMalformed, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

// skip skips a field of the given wire type.
func (r *pbReader) skip(wire int) error {
	switch wire {
	case 0:
		_, err := r.varint()
		return err
	case 1:
		if len(r.b) < 8 {
			return fmt.Errorf("%w: short fixed64", ErrMalformed)
		}
		r.b = r.b[8:]
	case 2:
		_, err := r.bytes()
		return err
	case 5:
		if len(r.b) < 4 {
			return fmt.Errorf("%w: short fixed32", ErrMalformed)
		}
		r.b = r.b[4:]
	default:
		return fmt.Errorf("%w: wire type %d", ErrMalformed, wire)
	}
	return nil
}

// decodePB parses a dag-pb node into its links and data (nil if absent).
func decodePB(block []byte) (links []Link, data []byte, err error) {
	r := pbReader{block}
	for len(r.b) > 0 {
		f, w, err := r.field()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case f == 1 && w == 2:
			if data, err = r.bytes(); err != nil {
				return nil, nil, err
			}
			if data == nil {
				data = []byte{}
			}
		case f == 2 && w == 2:
			lb, err := r.bytes()
			if err != nil {
				return nil, nil, err
			}
			if len(links) >= maxNodeLinks {
				return nil, nil, fmt.Errorf("%w: too many links", ErrMalformed)
			}
			l, err := decodeLink(lb)
			if err != nil {
				return nil, nil, err
			}
			links = append(links, l)
		default:
			return nil, nil, fmt.Errorf("%w: unexpected dag-pb field %d", ErrMalformed, f)
		}
	}
	return links, data, nil
}

func decodeLink(b []byte) (Link, error) {
	r := pbReader{b}
	var l Link
	var haveHash bool
	for len(r.b) > 0 {
		f, w, err := r.field()
		if err != nil {
			return l, err
		}
		switch {
		case f == 1 && w == 2:
			h, err := r.bytes()
			if err != nil {
				return l, err
			}
			if l.CID, err = cid.Cast(h); err != nil {
				return l, fmt.Errorf("%w: link hash: %v", ErrMalformed, err)
			}
			haveHash = true
		case f == 2 && w == 2:
			n, err := r.bytes()
			if err != nil {
				return l, err
			}
			if !utf8.Valid(n) {
				return l, fmt.Errorf("%w: link name is not UTF-8", ErrMalformed)
			}
			l.Name = string(n)
		case f == 3 && w == 0:
			if l.Size, err = r.varint(); err != nil {
				return l, err
			}
		default:
			return l, fmt.Errorf("%w: unexpected link field %d", ErrMalformed, f)
		}
	}
	if !haveHash {
		return l, fmt.Errorf("%w: link without hash", ErrMalformed)
	}
	return l, nil
}

// unixfsData is the decoded UnixFS Data message.
type unixfsData struct {
	typ        uint64
	data       []byte
	fileSize   uint64
	blockSizes []uint64
	fanout     uint64
	hashType   uint64
}

func decodeUnixFS(b []byte, maxBlockSizes int) (unixfsData, error) {
	r := pbReader{b}
	var u unixfsData
	haveType := false
	addSize := func(v uint64) error {
		if len(u.blockSizes) >= maxBlockSizes {
			return fmt.Errorf("%w: more blocksizes than links", ErrMalformed)
		}
		u.blockSizes = append(u.blockSizes, v)
		return nil
	}
	for len(r.b) > 0 {
		f, w, err := r.field()
		if err != nil {
			return u, err
		}
		switch {
		case f == 1 && w == 0:
			if u.typ, err = r.varint(); err != nil {
				return u, err
			}
			haveType = true
		case f == 2 && w == 2:
			if u.data, err = r.bytes(); err != nil {
				return u, err
			}
		case f == 3 && w == 0:
			if u.fileSize, err = r.varint(); err != nil {
				return u, err
			}
		case f == 4 && w == 0:
			v, err := r.varint()
			if err != nil {
				return u, err
			}
			if err := addSize(v); err != nil {
				return u, err
			}
		case f == 4 && w == 2: // packed
			p, err := r.bytes()
			if err != nil {
				return u, err
			}
			pr := pbReader{p}
			for len(pr.b) > 0 {
				v, err := pr.varint()
				if err != nil {
					return u, err
				}
				if err := addSize(v); err != nil {
					return u, err
				}
			}
		case f == 5 && w == 0:
			if u.hashType, err = r.varint(); err != nil {
				return u, err
			}
		case f == 6 && w == 0:
			if u.fanout, err = r.varint(); err != nil {
				return u, err
			}
		default: // mode, mtime and future fields carry nothing we use
			if err := r.skip(w); err != nil {
				return u, err
			}
		}
	}
	if !haveType {
		return u, fmt.Errorf("%w: UnixFS data without type", ErrMalformed)
	}
	return u, nil
}
