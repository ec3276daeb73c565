package transfer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/go-cid"
)

// MaxBlockSize is the largest block the protocol carries (2 MiB, the
// bitswap limit and chunker.MaxBlockSize).
const MaxBlockSize = 2 << 20

// MaxMessageLen bounds a message's length (type byte and body): a block
// plus a small header.
const MaxMessageLen = MaxBlockSize + 64

// maxCIDLen bounds a CID on the wire.
const maxCIDLen = 128

// maxLeaves bounds the leaves a have-map may describe (a bitfield of at
// most MaxMessageLen bytes).
const maxLeaves = 8 * (MaxMessageLen - 16)

// MsgType is a message's type byte.
//
//go:generate stringer -type MsgType
type MsgType byte

// Message types. Numbers are never reused; 8 to 15 are reserved.
const (
	MsgHello    MsgType = 1 // client→server: root CID (first message)
	MsgHaveMap  MsgType = 2 // server→client: leaf count, bitfield
	MsgHave     MsgType = 3 // server→client: leaf index now held
	MsgWant     MsgType = 4 // client→server: request ID, CID
	MsgBlock    MsgType = 5 // server→client: request ID, block bytes
	MsgDontHave MsgType = 6 // server→client: request ID
	MsgCancel   MsgType = 7 // client→server: request ID
)

// String names the message type as doc.go does.
func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "HELLO"
	case MsgHaveMap:
		return "HAVE_MAP"
	case MsgHave:
		return "HAVE"
	case MsgWant:
		return "WANT"
	case MsgBlock:
		return "BLOCK"
	case MsgDontHave:
		return "DONT_HAVE"
	case MsgCancel:
		return "CANCEL"
	}
	return fmt.Sprintf("MsgType(%d)", byte(t))
}

// ErrProtocol marks a malformed message: a protocol violation by the peer.
var ErrProtocol = errors.New("protocol violation")

// Msg is a decoded message. Which fields are set depends on Type.
type Msg struct {
	Type  MsgType
	Root  cid.Cid // HELLO
	CID   cid.Cid // WANT
	ID    uint64  // WANT, BLOCK, DONT_HAVE, CANCEL
	Index uint64  // HAVE
	Count uint64  // HAVE_MAP: number of leaves
	Bits  []byte  // HAVE_MAP: bitfield, leaf i is bit i%8 of byte i/8
	Data  []byte  // BLOCK

	buf []byte // what ReadMsg read it into, if from the pool (see Release)
}

// pooledLen is the capacity of recycled message buffers: a block of the
// default 1 MiB leaf size with its header. A fresh buffer per block would
// cost page faults and GC work on every block.
const pooledLen = 1<<20 + 64

var msgBufs sync.Pool // of *[]byte with cap pooledLen

// Release returns m's buffer for reuse by ReadMsg. Nothing may use m.Data
// (or m.Bits) afterwards.
func (m *Msg) Release() {
	if m.buf != nil {
		b := m.buf
		m.buf, m.Data, m.Bits = nil, nil, nil
		msgBufs.Put(&b)
	}
}

// Encode appends m's framing and body to b.
func (m *Msg) Encode(b []byte) []byte {
	var body []byte
	switch m.Type {
	case MsgHello:
		body = m.Root.Bytes()
	case MsgHaveMap:
		body = binary.AppendUvarint(nil, m.Count)
		body = append(body, m.Bits...)
	case MsgHave:
		body = binary.AppendUvarint(nil, m.Index)
	case MsgWant:
		body = binary.AppendUvarint(nil, m.ID)
		body = append(body, m.CID.Bytes()...)
	case MsgBlock:
		body = binary.AppendUvarint(nil, m.ID)
		body = append(body, m.Data...)
	case MsgDontHave, MsgCancel:
		body = binary.AppendUvarint(nil, m.ID)
	default:
		panic(fmt.Sprintf("bug: encoding unknown message type %d", m.Type))
	}
	b = binary.AppendUvarint(b, uint64(1+len(body)))
	b = append(b, byte(m.Type))
	return append(b, body...)
}

// ReadMsg reads one message from r. It checks the length against
// MaxMessageLen before allocating. Messages of unknown type are read and
// returned with only Type set, for the caller to skip. A malformed message
// gives an error wrapping ErrProtocol; the end of the stream between
// messages, io.EOF; a stream that breaks off mid-message (a peer that
// vanished), an error that is not ErrProtocol. A block-sized message is
// read into a recycled buffer: see Release.
func ReadMsg(r io.ByteReader, rd io.Reader) (*Msg, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		switch {
		case err == io.EOF:
			return nil, io.EOF
		case !errors.Is(err, errVarintOverflow):
			return nil, fmt.Errorf("reading message length: %w", err)
		}
		return nil, fmt.Errorf("%w: reading length: %v", ErrProtocol, err)
	}
	if n == 0 || n > MaxMessageLen {
		return nil, fmt.Errorf("%w: message length %d (max %d)", ErrProtocol, n, MaxMessageLen)
	}
	var buf []byte
	pooled := n > 64<<10 && n <= pooledLen
	if pooled {
		if b, ok := msgBufs.Get().(*[]byte); ok {
			buf = (*b)[:n]
		} else {
			buf = make([]byte, n, pooledLen)
		}
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, fmt.Errorf("reading a %d-byte message: %w", n, err)
	}
	m, err := DecodeMsg(buf)
	if err == nil && pooled {
		m.buf = buf
	}
	return m, err
}

// errVarintOverflow is binary.ReadUvarint's (unexported) error for a
// varint longer than 64 bits, which only a broken peer sends.
var errVarintOverflow = func() error {
	_, err := binary.ReadUvarint(bytes.NewReader(bytes.Repeat([]byte{0xff}, 11)))
	return err
}()

// DecodeMsg decodes a message body (type byte first). Leftover bytes are an
// error.
func DecodeMsg(buf []byte) (*Msg, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrProtocol)
	}
	m := &Msg{Type: MsgType(buf[0])}
	body := buf[1:]
	uvarint := func() (uint64, error) {
		v, k := binary.Uvarint(body)
		if k <= 0 {
			return 0, fmt.Errorf("%w: bad varint in %s", ErrProtocol, m.Type)
		}
		body = body[k:]
		return v, nil
	}
	readCID := func() (cid.Cid, error) {
		if len(body) > maxCIDLen {
			return cid.Undef, fmt.Errorf("%w: CID of %d bytes", ErrProtocol, len(body))
		}
		c, err := cid.Cast(body)
		if err != nil {
			return cid.Undef, fmt.Errorf("%w: bad CID in %s: %v", ErrProtocol, m.Type, err)
		}
		body = nil
		return c, nil
	}
	var err error
	switch m.Type {
	case MsgHello:
		m.Root, err = readCID()
	case MsgHaveMap:
		if m.Count, err = uvarint(); err == nil {
			if m.Count > maxLeaves || uint64(len(body)) != (m.Count+7)/8 {
				return nil, fmt.Errorf("%w: have-map of %d leaves in %d bytes", ErrProtocol, m.Count, len(body))
			}
			m.Bits, body = body, nil
		}
	case MsgHave:
		m.Index, err = uvarint()
	case MsgWant:
		if m.ID, err = uvarint(); err == nil {
			m.CID, err = readCID()
		}
	case MsgBlock:
		if m.ID, err = uvarint(); err == nil {
			m.Data, body = body, nil
		}
	case MsgDontHave, MsgCancel:
		m.ID, err = uvarint()
	default:
		return &Msg{Type: m.Type}, nil // unknown: skipped by the caller
	}
	if err != nil {
		return nil, err
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over in %s", ErrProtocol, len(body), m.Type)
	}
	return m, nil
}

// writeMsg encodes m onto w (buffered; the caller flushes).
func writeMsg(w *bufio.Writer, m *Msg, scratch []byte) ([]byte, error) {
	scratch = m.Encode(scratch[:0])
	_, err := w.Write(scratch)
	return scratch, err
}
