package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pshare/p2pshare/chunker"
)

// MaxBlockSize is the largest block the protocol carries (2 MiB, the
// bitswap limit and chunker.MaxBlockSize).
const MaxBlockSize = chunker.MaxBlockSize

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

	buf      []byte   // what ReadMsg read it into, if from the pool (see Release)
	scope    memScope // where its buffer's memory is reserved, if anywhere
	reserved int      // bytes reserved in scope
}

// pooledLen is the capacity of recycled message buffers: a block of the
// default 1 MiB leaf size with its header. A fresh buffer per block would
// cost page faults and GC work on every block.
const pooledLen = 1<<20 + 64

var msgBufs sync.Pool // of *[]byte with cap pooledLen

// Release returns m's buffer for reuse by ReadMsg and its memory
// reservation to the stream's resource scope. Nothing may use m.Data (or
// m.Bits) afterwards.
func (m *Msg) Release() {
	m.unreserve()
	if m.buf != nil {
		b := m.buf
		m.buf, m.Data, m.Bits = nil, nil, nil
		msgBufs.Put(&b)
	}
}

// unreserve returns m's memory reservation, if any, without recycling its
// buffer: for a block handed to a caller who keeps it.
func (m *Msg) unreserve() {
	if m.scope != nil {
		m.scope.ReleaseMemory(m.reserved)
		m.scope, m.reserved = nil, 0
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
// MaxMessageLen, and against the longest message of its type, before
// allocating. Messages of unknown type are skipped without being buffered
// and returned with only Type set. A malformed message gives an error
// wrapping ErrProtocol; the end of the stream between messages, io.EOF; a
// stream that breaks off mid-message (a peer that vanished), an error that
// is not ErrProtocol. A block-sized message is read into a recycled
// buffer: see Release.
func ReadMsg(r io.ByteReader, rd io.Reader) (*Msg, error) {
	return readMsg(context.Background(), r, rd, nil)
}

// maxLen is the longest message of type t (type byte included) that can
// decode, or 0 if t is unknown.
func maxLen(t MsgType) uint64 {
	switch t {
	case MsgHello:
		return 1 + maxCIDLen
	case MsgWant:
		return 1 + binary.MaxVarintLen64 + maxCIDLen
	case MsgHave, MsgDontHave, MsgCancel:
		return 1 + binary.MaxVarintLen64
	case MsgHaveMap:
		return 1 + binary.MaxVarintLen64 + (maxLeaves+7)/8
	case MsgBlock:
		return MaxMessageLen
	}
	return 0
}

// readMsg is ReadMsg that first reserves the message's buffer in scope
// (if not nil; see reserve), to be returned by Release. It gives up with
// an error wrapping errNoMemory if the scope stays full.
func readMsg(ctx context.Context, r io.ByteReader, rd io.Reader, scope memScope) (*Msg, error) {
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
	tb, err := r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("reading a %d-byte message: %w", n, noEOF(err))
	}
	t := MsgType(tb)
	lim := maxLen(t)
	if lim == 0 {
		// Unknown: skipped, and never buffered.
		if _, err := io.CopyN(io.Discard, rd, int64(n-1)); err != nil {
			return nil, fmt.Errorf("skipping a %d-byte message: %w", n, noEOF(err))
		}
		return &Msg{Type: t}, nil
	}
	if n > lim {
		return nil, fmt.Errorf("%w: %s of %d bytes (max %d)", ErrProtocol, t, n, lim)
	}
	pooled := n > 64<<10 && n <= pooledLen
	size := int(n)
	if pooled {
		size = pooledLen
	}
	if scope != nil {
		if err := reserve(ctx, scope, size); err != nil {
			return nil, err
		}
	}
	var buf []byte
	if pooled {
		if b, ok := msgBufs.Get().(*[]byte); ok {
			buf = (*b)[:n]
		} else {
			buf = make([]byte, n, pooledLen)
		}
	} else {
		buf = make([]byte, n)
	}
	buf[0] = tb
	_, err = io.ReadFull(rd, buf[1:])
	var m *Msg
	if err != nil {
		err = fmt.Errorf("reading a %d-byte message: %w", n, noEOF(err))
	} else {
		m, err = DecodeMsg(buf)
	}
	if err != nil {
		if scope != nil {
			scope.ReleaseMemory(size)
		}
		return nil, err
	}
	if pooled {
		m.buf = buf
	}
	if scope != nil {
		m.scope, m.reserved = scope, size
	}
	return m, nil
}

// noEOF turns an io.EOF inside a message into io.ErrUnexpectedEOF: only
// an end between messages is a clean end.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// memScope is what message buffers are reserved in: a stream's
// network.ResourceScope.
type memScope interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

// Message buffers (and blocks being uploaded) are reserved in the
// stream's resource scope at medium priority, so a crowd of slow or
// hostile streams holds no more memory than the resource manager grants
// the protocol, each peer and the node. A reservation that fails is
// retried every reserveRetry for up to reserveWait: what a stream waits
// for is usually its own earlier blocks leaving the put pipeline, or an
// upload to the same peer finishing. Then the stream is given up (reset,
// not banned).
const (
	reserveRetry = 20 * time.Millisecond
	reserveWait  = 10 * time.Second
)

// errNoMemory marks a reservation the resource manager refused.
var errNoMemory = errors.New("no memory for the stream")

// reserve reserves n bytes in scope, waiting as described above.
func reserve(ctx context.Context, scope memScope, n int) error {
	deadline := time.Now().Add(reserveWait)
	for {
		err := scope.ReserveMemory(n, network.ReservationPriorityMedium)
		if err == nil {
			return nil
		}
		if errors.Is(err, network.ErrResourceScopeClosed) || time.Now().After(deadline) {
			return fmt.Errorf("%w: reserving %d bytes: %v", errNoMemory, n, err)
		}
		t := time.NewTimer(reserveRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
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
