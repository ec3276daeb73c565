package transfer

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/p2pshare/p2pshare/peer/peertest"
)

// FuzzHandler feeds arbitrary bytes to the live server through a real
// libp2p stream. The server must neither panic nor hang: it answers or
// resets, and the stream ends.
func FuzzHandler(f *testing.F) {
	root, leaves, blocks := content(f, 4, 1000)
	srv := newNode(f)
	srv.seedWith(root, leaves, blocks, all)
	cli := peertest.NewHost(f)
	peertest.Connect(f, cli, srv.h)

	hello := (&Msg{Type: MsgHello, Root: root}).Encode(nil)
	f.Add(hello)
	f.Add(append(append([]byte{}, hello...), (&Msg{Type: MsgWant, ID: 1, CID: leaves[0]}).Encode(nil)...))
	f.Add(append(append([]byte{}, hello...), (&Msg{Type: MsgBlock, ID: 1, Data: []byte("x")}).Encode(nil)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := cli.NewStream(ctx, srv.h.ID(), ID)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		start := time.Now()
		s.SetDeadline(start.Add(5 * time.Second))
		s.Write(raw)
		s.CloseWrite()
		// The server must end the stream (close or reset) on its own.
		io.Copy(io.Discard, s)
		if time.Since(start) > 4*time.Second {
			t.Fatal("server kept the stream open after the client finished")
		}
	})
}
