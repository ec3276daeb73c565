package peer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

func TestSwarmKeyParse(t *testing.T) {
	hex64 := strings.Repeat("0f", 32)
	cases := []struct {
		name string
		file string
		ok   bool
		msg  string
	}{
		{"kubo base16", "/key/swarm/psk/1.0.0/\n/base16/\n" + hex64 + "\n", true, ""},
		{"crlf, no final newline", "/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + hex64, true, ""},
		{"empty", "", false, "too short"},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hex64 + "\n", false, "expected file header"},
		{"escape in header", "\x1b[2J\n/base16/\n" + hex64 + "\n", false, `\x1b[2J"`},
		{"unknown encoding", "/key/swarm/psk/1.0.0/\n/base99/\n" + hex64 + "\n", false, "unknown encoding"},
		{"short key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hex64[:40] + "\n", false, "too short"},
		{"not hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("zz", 32) + "\n", false, "invalid byte"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			psk, err := ParseSwarmKey("swarm.key", []byte(tc.file))
			if tc.ok {
				if err != nil || len(psk) != 32 || psk[0] != 0x0f {
					t.Fatalf("ParseSwarmKey = %x, %v", psk, err)
				}
				return
			}
			if !errors.Is(err, ErrBadSwarmKey) || !IsUsage(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v; want ErrBadSwarmKey, a usage error mentioning %q", err, tc.msg)
			}
			if strings.ContainsAny(err.Error(), "\n\x1b") {
				t.Fatalf("err %q is not one printable line", err)
			}
		})
	}
	a, b := NewSwarmKey(), NewSwarmKey()
	if bytes.Equal(a, b) {
		t.Fatal("two new swarm keys are equal")
	}
	if lines := strings.Split(string(a), "\n"); len(lines) != 4 || lines[0] != "/key/swarm/psk/1.0.0/" || lines[1] != "/base16/" || len(lines[2]) != 64 || lines[3] != "" {
		t.Fatalf("NewSwarmKey = %q: want the three lines of Kubo's swarm.key", a)
	}
	if _, err := ParseSwarmKey("new", a); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSwarmKey(filepath.Join(t.TempDir(), "none")); !IsUsage(err) {
		t.Fatalf("missing key file: %v, want a usage error", err)
	}
}

func TestSwarmPrivateListen(t *testing.T) {
	var in []ma.Multiaddr
	for _, s := range []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1", "/ip6/::/tcp/0", "/dns4/example.com/tcp/1", "/ip4/1.2.3.4/tcp/1/ws", "/ip4/0.0.0.0/udp/1/quic-v1/webtransport"} {
		in = append(in, ma.StringCast(s))
	}
	tcp, other := PrivateListen(in)
	if len(tcp) != 3 || len(other) != 3 || !tcp[0].Equal(in[0]) || !other[0].Equal(in[1]) {
		t.Fatalf("PrivateListen = %v, %v", tcp, other)
	}
}

func testSwarmKey(t *testing.T) pnet.PSK {
	t.Helper()
	psk, err := ParseSwarmKey("test", NewSwarmKey())
	if err != nil {
		t.Fatal(err)
	}
	return psk
}

// TestSwarmKeyConnect: nodes with the same key connect and fetch; a node
// without the key, or with another, cannot even join, and says why.
func TestSwarmKeyConnect(t *testing.T) {
	key := testSwarmKey(t)
	a := startNode(t, NodeOptions{SwarmKey: key})
	root, data := addFile(t, a, 1<<20+5, 64<<10)

	b := startNode(t, NodeOptions{SwarmKey: key}, a)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "copy.bin")
	if _, err := b.Get(ctx, root, GetOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("private get: content differs (err %v)", err)
	}

	for _, tc := range []struct {
		name string
		key  pnet.PSK
	}{{"no key", nil}, {"another key", testSwarmKey(t)}} {
		t.Run(tc.name, func(t *testing.T) {
			r := openTestRepo(t)
			_, err := Start(ctx, r, NodeOptions{Listen: loopback, SwarmKey: tc.key, Bootstrap: []libp2ppeer.AddrInfo{a.Host.Peerstore().PeerInfo(a.Host.ID())}})
			var he *HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, ErrHandshake) || he.Peer != a.Host.ID() || he.Private != (tc.key != nil) {
				t.Fatalf("Start = %v; want a HandshakeError for %s", err, a.Host.ID())
			}
			if !strings.HasPrefix(err.Error(), "cannot connect to "+a.Host.ID().String()+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("message %q: want one line, cannot connect to <peer>: ...", err)
			}
		})
	}
	// Nor can a public node fetch from a private one it dials directly.
	c := startNode(t, NodeOptions{})
	if err := c.Host.Connect(ctx, a.Host.Peerstore().PeerInfo(a.Host.ID())); err == nil {
		t.Fatal("a node without the swarm key connected to a private node")
	}
}

// TestSwarmKeyQUIC: with a swarm key the node listens on its TCP
// addresses only; a QUIC-only listen is refused.
func TestSwarmKeyQUIC(t *testing.T) {
	key := testSwarmKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := openTestRepo(t)
	n, err := Start(ctx, r, NodeOptions{SwarmKey: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, a := range n.Host.Addrs() {
		if !isTCP(a) {
			t.Errorf("private node listens on %s", a)
		}
	}
	r2 := openTestRepo(t)
	if _, err := Start(ctx, r2, NodeOptions{SwarmKey: key, Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}}); !errors.Is(err, ErrNoTCPListen) || !IsUsage(err) {
		t.Fatalf("QUIC-only private node: %v, want ErrNoTCPListen", err)
	}
}

// TestSwarmKeyConfig: the repo config's swarm_key (relative to the repo)
// is used when NodeOptions carry none; a malformed one is a usage error.
func TestSwarmKeyConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"swarm_key": "swarm.key"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "swarm.key"), []byte("/key/swarm/psk/1.0.0/\n/base16/\nxyz\n"), 0o600)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Start(ctx, r, NodeOptions{Listen: loopback}); !errors.Is(err, ErrBadSwarmKey) || !IsUsage(err) {
		t.Fatalf("malformed config key: %v, want ErrBadSwarmKey", err)
	}
	key := NewSwarmKey()
	os.WriteFile(filepath.Join(dir, "swarm.key"), key, 0o600)
	n, err := Start(ctx, r, NodeOptions{Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	psk, _ := ParseSwarmKey("k", key)
	b := startNode(t, NodeOptions{SwarmKey: psk}, n)
	if len(b.Host.Network().ConnsToPeer(n.Host.ID())) == 0 {
		t.Fatal("a node with the config's key did not connect")
	}
}
