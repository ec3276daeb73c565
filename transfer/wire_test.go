package transfer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func someCID() cid.Cid {
	m, _ := mh.Sum([]byte("x"), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, m)
}

func sampleMsgs() []*Msg {
	c := someCID()
	return []*Msg{
		{Type: MsgHello, Root: c},
		{Type: MsgHaveMap, Count: 10, Bits: []byte{0xff, 0x03}},
		{Type: MsgHaveMap},
		{Type: MsgHave, Index: 300},
		{Type: MsgWant, ID: 7, CID: c},
		{Type: MsgBlock, ID: 8, Data: []byte("hello")},
		{Type: MsgBlock, ID: 9, Data: []byte{}},
		{Type: MsgDontHave, ID: 10},
		{Type: MsgCancel, ID: 11},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		t.Run(m.Type.String(), func(t *testing.T) {
			enc := m.Encode(nil)
			br := bufio.NewReader(bytes.NewReader(enc))
			got, err := ReadMsg(br, br)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Encode(nil), enc) {
				t.Fatalf("re-encoded %x, want %x", got.Encode(nil), enc)
			}
			if _, err := ReadMsg(br, br); err != io.EOF {
				t.Fatalf("after the message: %v, want io.EOF", err)
			}
		})
	}
}

func TestWriteBlockFraming(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	m := &Msg{Type: MsgBlock, ID: 300, Data: bytes.Repeat([]byte{7}, 1000)}
	if _, err := writeBlock(bw, m, nil); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	if !bytes.Equal(buf.Bytes(), m.Encode(nil)) {
		t.Fatal("writeBlock framing differs from Encode")
	}
}

func TestBadMessages(t *testing.T) {
	cases := []struct {
		name string
		raw  []byte
	}{
		{"zero length", []byte{0}},
		{"too long", append(appendUv(nil, MaxMessageLen+1), 4)},
		{"leftover after HAVE", []byte{3, byte(MsgHave), 1, 0}},
		{"bitfield of the wrong size", []byte{3, byte(MsgHaveMap), 9, 0}},
		{"bad CID", []byte{4, byte(MsgHello), 1, 2, 3}},
		{"WANT without CID", []byte{2, byte(MsgWant), 1}},
		{"oversized CID", append(append(appendUv(nil, 2+200), byte(MsgHello)), make([]byte, 201)...)},
		{"bad varint", append([]byte{11, byte(MsgCancel)}, bytes.Repeat([]byte{0xff}, 10)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(bytes.NewReader(tc.raw))
			if _, err := ReadMsg(br, br); !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
	}
}

// A stream that breaks off mid-message is a vanished peer, not a
// protocol violation.
func TestTruncatedIsNotViolation(t *testing.T) {
	for _, raw := range [][]byte{{5, byte(MsgWant), 1}, {0x80}} {
		br := bufio.NewReader(bytes.NewReader(raw))
		_, err := ReadMsg(br, br)
		if err == nil || err == io.EOF || errors.Is(err, ErrProtocol) {
			t.Fatalf("%x: err = %v, want a transport error", raw, err)
		}
	}
}

func TestUnknownTypeSkipped(t *testing.T) {
	raw := []byte{3, 42, 1, 2}
	raw = append(raw, (&Msg{Type: MsgCancel, ID: 5}).Encode(nil)...)
	br := bufio.NewReader(bytes.NewReader(raw))
	m, err := ReadMsg(br, br)
	if err != nil || m.Type != 42 {
		t.Fatalf("unknown message: %+v, %v", m, err)
	}
	m, err = ReadMsg(br, br)
	if err != nil || m.Type != MsgCancel || m.ID != 5 {
		t.Fatalf("message after an unknown one: %+v, %v", m, err)
	}
}

func appendUv(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// FuzzReadMsg: the decoder never panics, never reads a message longer than
// the limit, and what it decodes re-encodes to the same bytes.
func FuzzReadMsg(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(m.Encode(nil))
	}
	f.Add([]byte{0})
	f.Add([]byte{3, 42, 1, 2})
	f.Add(appendUv(nil, MaxMessageLen+1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		br := bufio.NewReader(bytes.NewReader(raw))
		m, err := ReadMsg(br, br)
		if err != nil {
			return
		}
		if m.Type < MsgHello || m.Type > MsgCancel {
			return // unknown type: skipped, nothing to re-encode
		}
		n := len(raw) - br.Buffered()
		if n > MaxMessageLen+10 {
			t.Fatalf("consumed %d bytes, over the limit", n)
		}
		if !bytes.Equal(m.Encode(nil), raw[:n]) {
			// Non-minimal varints decode but re-encode shorter; accept
			// only that difference.
			again, err := DecodeMsg(m.Encode(nil)[lenOf(m.Encode(nil)):])
			if err != nil || !bytes.Equal(again.Encode(nil), m.Encode(nil)) {
				t.Fatalf("decode→encode differs: %x vs %x", m.Encode(nil), raw[:n])
			}
		}
	})
}

func lenOf(b []byte) int {
	for i, x := range b {
		if x < 0x80 {
			return i + 1
		}
	}
	return len(b)
}
