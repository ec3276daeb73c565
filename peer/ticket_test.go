package peer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/transfer/transfertest"
)

// testPeerID is a fixed Ed25519 peer ID, so that test tickets are stable.
func testPeerID(t testing.TB, seed byte) libp2ppeer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := libp2ppeer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

const testRoot = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"

func testTicket(t testing.TB) Ticket {
	return Ticket{Root: cid.MustParse(testRoot), Peers: []libp2ppeer.AddrInfo{
		{ID: testPeerID(t, 1), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.7/tcp/4001"), ma.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1"), ma.StringCast("/ip4/127.0.0.1/tcp/4001")}},
		{ID: testPeerID(t, 2), Addrs: []ma.Multiaddr{ma.StringCast("/ip6/2001:db8::1/tcp/4001")}},
	}}
}

func TestTicketRoundTrip(t *testing.T) {
	want := testTicket(t)
	s, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "p2ps1") {
		t.Fatalf("ticket %q does not begin with p2ps1", s)
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			t.Fatalf("character %q at %d of %q is not [a-z0-9]", c, i, s)
		}
	}
	got, err := ParseTicket(s)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Root.Equals(want.Root) || len(got.Peers) != len(want.Peers) {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
	for i := range want.Peers {
		if got.Peers[i].ID != want.Peers[i].ID || len(got.Peers[i].Addrs) != len(want.Peers[i].Addrs) {
			t.Fatalf("peer %d: %+v, want %+v", i, got.Peers[i], want.Peers[i])
		}
		for j := range want.Peers[i].Addrs {
			if !got.Peers[i].Addrs[j].Equal(want.Peers[i].Addrs[j]) {
				t.Fatalf("peer %d address %d: %s, want %s", i, j, got.Peers[i].Addrs[j], want.Peers[i].Addrs[j])
			}
		}
	}
	if again, _ := got.Encode(); again != s {
		t.Fatalf("encode(parse(s)) = %q, want %q", again, s)
	}
	if !IsTicket(s) || IsTicket(testRoot) {
		t.Fatal("IsTicket does not tell a ticket from a CID")
	}
}

// TestTicketName: a ticket with a name is version 2 and gives the name
// back; without one it stays version 1.
func TestTicketName(t *testing.T) {
	want := testTicket(t)
	want.Name = "holiday video.mkv"
	s, err := want.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "p2ps2") {
		t.Fatalf("named ticket %q does not begin with p2ps2", s)
	}
	got, err := ParseTicket(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != want.Name || !got.Root.Equals(want.Root) || len(got.Peers) != 2 {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
	for _, bad := range []string{"..", ".", "a/b", `a\b`, "a\x00b", strings.Repeat("n", MaxTicketName+1)} {
		tk := testTicket(t)
		tk.Name = bad
		if _, err := tk.Encode(); !errors.Is(err, ErrBadTicket) {
			t.Errorf("Encode with name %q: %v, want ErrBadTicket", bad, err)
		}
	}
}

// rawTicket encodes body as a version-1 ticket as it is, valid or not.
func rawTicket(body []byte) string { return TicketPrefix + "1" + ticketBase32.EncodeToString(body) }

// rawTicket2 encodes body as a version-2 (named) ticket as it is.
func rawTicket2(body []byte) string { return TicketPrefix + "2" + ticketBase32.EncodeToString(body) }

// ticketBody builds a body from parts: []byte is written as it is, a
// string as a length-prefixed field, an int as a uvarint.
func ticketBody(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case []byte:
			b = append(b, v...)
		case string:
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case int:
			b = binary.AppendUvarint(b, uint64(v))
		}
	}
	return b
}

func TestTicketMalformed(t *testing.T) {
	good, err := testTicket(t).Encode()
	if err != nil {
		t.Fatal(err)
	}
	root := string(cid.MustParse(testRoot).Bytes())
	id := string(testPeerID(t, 1))
	addr := string(ma.StringCast("/ip4/192.0.2.7/tcp/4001").Bytes())
	valid := ticketBody(root, 1, id, 1, addr)
	if _, err := ParseTicket(rawTicket(valid)); err != nil {
		t.Fatalf("the cases' base is not valid: %v", err)
	}
	cases := []struct {
		name, ticket, reason string
	}{
		{"empty", "", "does not begin with"},
		{"a CID", testRoot, "does not begin with"},
		{"prefix alone", "p2ps", "no version"},
		{"unknown version", "p2ps3" + good[5:], `version '3'`},
		{"too long", "p2ps1" + strings.Repeat("a", MaxTicketLen), "more than 4096"},
		{"uppercase", strings.ToUpper(good[:5]) + good[5:], "does not begin with"},
		{"uppercase body", good[:10] + "A" + good[11:], "not lowercase base32"},
		{"shell character", good[:10] + "$" + good[11:], "not lowercase base32"},
		{"digit outside base32", good[:10] + "1" + good[11:], "not lowercase base32"},
		{"impossible length", "p2ps1a", "base32"},
		{"non-zero trailing bits", rawTicket(valid)[:len(rawTicket(valid))-1] + "7", "not canonical base32"},
		{"empty body", "p2ps1", "truncated at root CID length"},
		{"root length past the end", rawTicket(ticketBody(200, root)), "truncated in root CID"},
		{"huge length", rawTicket(ticketBody(1 << 40)), "more than 65536"},
		{"bad root", rawTicket(ticketBody("\x01\x55\x12\x01", 1, id, 1, addr)), "root CID"},
		{"no peer count", rawTicket(ticketBody(root)), "truncated at peer count"},
		{"no peer", rawTicket(ticketBody(root, 0)), "names no peer"},
		{"too many peers", rawTicket(ticketBody(root, MaxTicketPeers+1)), "peer count is 9, more than 8"},
		{"missing peer", rawTicket(ticketBody(root, 2, id, 1, addr)), "truncated at peer 2 ID length"},
		{"bad peer ID", rawTicket(ticketBody(root, 1, "\x12\x05abc", 1, addr)), "peer 1 ID"},
		{"empty peer ID", rawTicket(ticketBody(root, 1, "", 1, addr)), "empty peer 1 ID"},
		{"peer without address", rawTicket(ticketBody(root, 1, id, 0)), "peer 1 has no address"},
		{"too many addresses", rawTicket(ticketBody(root, 1, id, MaxTicketAddrs+1)), "more than 16"},
		{"bad address", rawTicket(ticketBody(root, 1, id, 1, "\x04\x01\x02")), "peer 1 address 1"},
		{"address cut", rawTicket(ticketBody(root, 1, id, 2, addr)), "truncated at peer 1 address 2 length"},
		{"leftover bytes", rawTicket(append(valid, 0)), "1 bytes left over"},
		{"version 2 without name", rawTicket2(valid), "truncated at name length"},
		{"empty name", rawTicket2(ticketBody([]byte(valid), "")), "empty name"},
		{"name that climbs out", rawTicket2(ticketBody([]byte(valid), "..")), "name: unsafe"},
		{"name with a slash", rawTicket2(ticketBody([]byte(valid), "a/../../b")), "name: unsafe"},
		{"name too long", rawTicket2(ticketBody([]byte(valid), strings.Repeat("n", MaxTicketName+1))), "more than 255"},
		{"bytes after the name", rawTicket2(append(ticketBody([]byte(valid), "a.txt"), 0)), "1 bytes left over"},
		{"non-minimal varint", rawTicket(ticketBody([]byte{0x80 | byte(len(root)), 0x00}, []byte(root), 1, id, 1, addr)), "canonical"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTicket(tc.ticket)
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("ParseTicket: %v, want ErrBadTicket", err)
			}
			if !strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line mentioning %q", err, tc.reason)
			}
			if !IsUsage(err) {
				t.Fatal("a malformed ticket is not a usage error")
			}
		})
	}
}

func TestTicketEncodeLimits(t *testing.T) {
	a := ma.StringCast("/ip4/192.0.2.7/tcp/4001")
	many := make([]ma.Multiaddr, MaxTicketAddrs+1)
	for i := range many {
		many[i] = a
	}
	peers := make([]libp2ppeer.AddrInfo, MaxTicketPeers+1)
	for i := range peers {
		peers[i] = libp2ppeer.AddrInfo{ID: testPeerID(t, byte(i)), Addrs: []ma.Multiaddr{a}}
	}
	root := cid.MustParse(testRoot)
	cases := []struct {
		name string
		t    Ticket
	}{
		{"no root", Ticket{Peers: peers[:1]}},
		{"no peer", Ticket{Root: root}},
		{"too many peers", Ticket{Root: root, Peers: peers}},
		{"no address", Ticket{Root: root, Peers: []libp2ppeer.AddrInfo{{ID: peers[0].ID}}}},
		{"too many addresses", Ticket{Root: root, Peers: []libp2ppeer.AddrInfo{{ID: peers[0].ID, Addrs: many}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := tc.t.Encode(); !errors.Is(err, ErrBadTicket) {
				t.Fatalf("Encode = %q, %v; want ErrBadTicket", s, err)
			}
		})
	}
}

func TestTicketAddrs(t *testing.T) {
	m := func(ss ...string) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, s := range ss {
			out = append(out, ma.StringCast(s))
		}
		return out
	}
	cases := []struct {
		name     string
		in, want []ma.Multiaddr
	}{
		{"loopback last", m("/ip4/127.0.0.1/tcp/1", "/ip4/10.1.2.3/tcp/1", "/ip6/::1/tcp/1", "/ip4/203.0.113.5/udp/1/quic-v1"),
			m("/ip4/10.1.2.3/tcp/1", "/ip4/203.0.113.5/udp/1/quic-v1", "/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1")},
		{"no unspecified or link-local", m("/ip4/0.0.0.0/tcp/1", "/ip6/::/tcp/1", "/ip6/fe80::1/tcp/1", "/ip4/127.0.0.1/tcp/1"),
			m("/ip4/127.0.0.1/tcp/1")},
		{"at most 8", m("/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1", "/ip4/10.0.0.4/tcp/1", "/ip4/10.0.0.5/tcp/1",
			"/ip4/10.0.0.6/tcp/1", "/ip4/10.0.0.7/tcp/1", "/ip4/10.0.0.8/tcp/1", "/ip4/127.0.0.1/tcp/1"),
			m("/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1", "/ip4/10.0.0.4/tcp/1", "/ip4/10.0.0.5/tcp/1",
				"/ip4/10.0.0.6/tcp/1", "/ip4/10.0.0.7/tcp/1", "/ip4/10.0.0.8/tcp/1")},
		{"none", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ticketAddrs(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestHintedProvidersOrder(t *testing.T) {
	a, b, c := testPeerID(t, 1), testPeerID(t, 2), testPeerID(t, 3)
	h := hinted{peers: []libp2ppeer.AddrInfo{{ID: a}, {ID: b}}, next: transfertest.Providers{{ID: c}}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []libp2ppeer.ID
	for ai := range h.FindProviders(ctx, cid.MustParse(testRoot)) {
		got = append(got, ai.ID)
	}
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Fatalf("got %v, want the hints %v %v then the DHT's %v", got, a, b, c)
	}
}

// TestGetByTicket fetches with nothing but a ticket: no bootstrap peer, no
// DHT record anywhere (the seed provides to nobody).
func TestGetByTicket(t *testing.T) {
	a := startNode(t, NodeOptions{})
	path := filepath.Join(t.TempDir(), "src.bin")
	data := writeRandom(t, path, 1<<20+5, 7)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := a.Add(ctx, path, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := a.Ticket(ctx, res.CID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tk, err = ParseTicket(s)
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, NodeOptions{})
	out := filepath.Join(t.TempDir(), "got.bin")
	if _, err := b.Get(ctx, tk.Root, GetOptions{Out: out, Peers: tk.Peers, Timeout: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded bytes differ (err %v)", err)
	}
	if _, err := b.Ticket(ctx, cid.MustParse(testRoot)); !errors.Is(err, ErrNotShared) {
		t.Fatalf("ticket for a root not held: %v, want ErrNotShared", err)
	}
}

// FuzzParseTicket: no input panics or decodes to more than the limits, and
// whatever decodes encodes back to the same text.
func FuzzParseTicket(f *testing.F) {
	good, err := testTicket(f).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add("p2ps1")
	f.Add("p2ps2aaaa")
	f.Add(testRoot)
	named := testTicket(f)
	named.Name = "report.pdf"
	if s, err := named.Encode(); err == nil {
		f.Add(s)
	}
	f.Add(rawTicket(ticketBody(string(cid.MustParse(testRoot).Bytes()), 1, string(testPeerID(f, 1)), 1, string(ma.StringCast("/ip4/192.0.2.7/tcp/4001").Bytes()))))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := ParseTicket(s)
		if err != nil {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("error %v does not wrap ErrBadTicket", err)
			}
			return
		}
		if len(tk.Peers) == 0 || len(tk.Peers) > MaxTicketPeers {
			t.Fatalf("%d peers", len(tk.Peers))
		}
		for _, p := range tk.Peers {
			if len(p.Addrs) == 0 || len(p.Addrs) > MaxTicketAddrs {
				t.Fatalf("%d addresses", len(p.Addrs))
			}
		}
		again, err := tk.Encode()
		if err != nil || again != s {
			t.Fatalf("encode(parse(%q)) = %q, %v", s, again, err)
		}
	})
}
