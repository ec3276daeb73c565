// Command rawstream is the reference the testnet measures p2pshare
// against: a raw libp2p stream between two processes, on a host built as
// p2pshare's is for TCP (TCP, TLS, yamux), with nothing on top.
//
// Usage:
//
//	rawstream send -bytes N [-listen MULTIADDR]
//	rawstream recv -bytes N -addr MULTIADDR [-o FOLDER]
//
// send listens, prints "listening <multiaddr>/p2p/<id>" and writes N bytes
// on every stream opened to it, until SIGTERM or SIGINT. recv dials that
// address, opens one stream and reads N bytes into memory, or, with -o,
// into a new file in FOLDER that it fsyncs before it exits (then removes).
// go-libp2p ships no perf protocol (/perf/1.0.0 lives in libp2p's
// test-plans, not in go-libp2p at our version), hence this small program.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// protocolID is the raw stream's protocol.
const protocolID = "/p2pshare/rawstream/1.0.0"

// bufSize is the size of each write and read: a leaf's size in p2pshare.
const bufSize = 1 << 20

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := fs.Int64("bytes", 1<<30, "bytes per stream")
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "send: listen address")
	addr := fs.String("addr", "", "recv: the sender's multiaddr with /p2p/")
	out := fs.String("o", "", "recv: write into a new file in this folder and fsync it (default: into memory)")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "send":
		err = send(*listen, *n)
	case "recv":
		err = recv(*addr, *out, *n)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawstream:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rawstream send -bytes N [-listen MULTIADDR] | recv -bytes N -addr MULTIADDR [-o FOLDER]")
	os.Exit(2)
}

// newHost builds a host with p2pshare's TCP stack: TCP, TLS, yamux.
func newHost(listen ...string) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.DefaultMuxers,
	}
	if len(listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	return libp2p.New(opts...)
}

func send(listen string, n int64) error {
	h, err := newHost(listen)
	if err != nil {
		return err
	}
	defer h.Close()
	buf := make([]byte, bufSize)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8)
	}
	h.SetStreamHandler(protocolID, func(st network.Stream) {
		defer st.Close()
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			if _, err := st.Write(buf[:k]); err != nil {
				st.Reset()
				return
			}
			left -= k
		}
	})
	fmt.Printf("listening %s/p2p/%s\n", h.Addrs()[0], h.ID())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return nil
}

func recv(addr, dir string, n int64) error {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return err
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return err
	}
	h, err := newHost()
	if err != nil {
		return err
	}
	defer h.Close()
	ctx := context.Background()
	if err := h.Connect(ctx, *ai); err != nil {
		return err
	}
	st, err := h.NewStream(ctx, ai.ID, protocolID)
	if err != nil {
		return err
	}
	defer st.Close()
	var w io.Writer = io.Discard
	var f *os.File
	if dir != "" {
		if f, err = os.CreateTemp(dir, "rawstream-*.bin"); err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = f
	}
	// Only Write: neither io.Discard's nor the file's ReadFrom, so every
	// read is of bufSize.
	got, err := io.CopyBuffer(struct{ io.Writer }{w}, io.LimitReader(st, n), make([]byte, bufSize))
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("got %d bytes of %d", got, n)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("syncing %s: %w", filepath.Base(f.Name()), err)
		}
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			return err
		}
	}
	return nil
}
