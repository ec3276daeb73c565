package peer

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/transfer"
)

// A ticket is one copy-and-paste-safe token that names a root and peers
// holding it, so that `get TICKET` can dial them at once, before any DHT
// record has spread (as iroh's tickets and magnet links with peer hints
// do). Its text is TicketPrefix, one version character, then the body in
// lowercase base32 (RFC 4648 alphabet, no padding): only [a-z0-9], nothing
// a shell interprets. Version 1's body:
//
//	uvarint len, root CID bytes
//	uvarint peer count (1..MaxTicketPeers)
//	each peer:
//	    uvarint len, peer ID bytes
//	    uvarint address count (1..MaxTicketAddrs)
//	    each address: uvarint len, multiaddr bytes (without /p2p/<ID>)
//
// Version 2 is version 1's body followed by the root's name (what it was
// added as, so that `get TICKET` writes report.pdf, not a CID):
//
//	uvarint len (1..MaxTicketName), name bytes (one plain path element)
//
// A ticket without a name is written as version 1, which every p2pshare
// that reads tickets reads.
//
// The decoder takes hostile input: the text is at most MaxTicketLen
// characters, every length is checked against the bytes left before
// anything is sliced, leftover bytes are refused, and only the canonical
// encoding (minimal varints, zero trailing bits) is accepted, so that
// decoding and encoding again gives the same text.

// TicketPrefix begins every ticket; the version character follows it.
const TicketPrefix = "p2ps"

// ticketV1 and ticketV2 are the version characters of the formats above.
// A later format takes the next digit, and this decoder refuses it by name.
const (
	ticketV1 = '1'
	ticketV2 = '2'
)

// Limits of a ticket, so that a pasted token cannot make the decoder
// allocate much: 4 KiB of text, 8 peers of 16 addresses each.
const (
	MaxTicketLen   = 4096
	MaxTicketPeers = 8
	MaxTicketAddrs = 16
	MaxTicketName  = 255
)

// ErrBadTicket is wrapped by every error of ParseTicket and Encode.
var ErrBadTicket = errors.New("malformed ticket")

// Ticket is what a ticket carries: a root, peers that hold it and, when
// known, the name the root was added as.
type Ticket struct {
	Root  cid.Cid
	Peers []libp2ppeer.AddrInfo
	// Name is the root's file or folder name, "" when unknown. It comes
	// from whoever made the ticket: it is one plain path element
	// (chunker.CheckName), and is printed escaped.
	Name string
}

var ticketBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func badTicket(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadTicket, fmt.Sprintf(format, args...))
}

// IsTicket reports whether s looks like a ticket rather than a CID (no
// CID's text begins with TicketPrefix); ParseTicket says whether it is a
// good one.
func IsTicket(s string) bool {
	return len(s) >= len(TicketPrefix) && s[:len(TicketPrefix)] == TicketPrefix
}

// Encode returns the ticket's text. It fails (ErrBadTicket) when the
// ticket has no root, no peer, a peer without addresses, more than the
// limits allow, or text longer than MaxTicketLen.
func (t Ticket) Encode() (string, error) {
	body, err := t.body()
	if err != nil {
		return "", err
	}
	version := ticketV1
	if t.Name != "" {
		version = ticketV2
	}
	s := TicketPrefix + string(version) + ticketBase32.EncodeToString(body)
	if len(s) > MaxTicketLen {
		return "", badTicket("%d characters, more than %d", len(s), MaxTicketLen)
	}
	return s, nil
}

func (t Ticket) body() ([]byte, error) {
	if !t.Root.Defined() {
		return nil, badTicket("no root CID")
	}
	if len(t.Peers) == 0 || len(t.Peers) > MaxTicketPeers {
		return nil, badTicket("%d peers (1 to %d)", len(t.Peers), MaxTicketPeers)
	}
	var b []byte
	field := func(p []byte) {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	field(t.Root.Bytes())
	b = binary.AppendUvarint(b, uint64(len(t.Peers)))
	for _, p := range t.Peers {
		if p.ID == "" {
			return nil, badTicket("a peer without ID")
		}
		if len(p.Addrs) == 0 || len(p.Addrs) > MaxTicketAddrs {
			return nil, badTicket("peer %s has %d addresses (1 to %d)", p.ID, len(p.Addrs), MaxTicketAddrs)
		}
		field([]byte(p.ID))
		b = binary.AppendUvarint(b, uint64(len(p.Addrs)))
		for _, a := range p.Addrs {
			field(a.Bytes())
		}
	}
	if t.Name != "" {
		if err := checkTicketName(t.Name); err != nil {
			return nil, err
		}
		field([]byte(t.Name))
	}
	return b, nil
}

// checkTicketName refuses a name a download could not safely be written
// under: not one plain path element, or longer than MaxTicketName.
func checkTicketName(name string) error {
	if len(name) > MaxTicketName {
		return badTicket("name of %d bytes, more than %d", len(name), MaxTicketName)
	}
	if err := chunker.CheckName(name); err != nil {
		return badTicket("name: %v", err)
	}
	return nil
}

// ParseTicket decodes a ticket's text. Every error wraps ErrBadTicket and
// says in a few words what is wrong.
func ParseTicket(s string) (Ticket, error) {
	if len(s) > MaxTicketLen {
		return Ticket{}, badTicket("%d characters, more than %d", len(s), MaxTicketLen)
	}
	if !IsTicket(s) {
		return Ticket{}, badTicket("does not begin with %q", TicketPrefix)
	}
	rest := s[len(TicketPrefix):]
	if rest == "" {
		return Ticket{}, badTicket("no version after %q", TicketPrefix)
	}
	if rest[0] != ticketV1 && rest[0] != ticketV2 {
		return Ticket{}, badTicket("version %q is not one this p2pshare reads (%q or %q; a newer p2pshare made it?)", rest[0], ticketV1, ticketV2)
	}
	text := rest[1:]
	for i := 0; i < len(text); i++ {
		if c := text[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return Ticket{}, badTicket("character %q at %d is not lowercase base32 (cut or changed in copying?)", c, len(TicketPrefix)+1+i)
		}
	}
	body, err := ticketBase32.DecodeString(text)
	if err != nil {
		return Ticket{}, badTicket("base32: %v (cut in copying?)", err)
	}
	if ticketBase32.EncodeToString(body) != text {
		return Ticket{}, badTicket("not canonical base32 (changed in copying?)")
	}
	t, err := decodeTicketBody(body, rest[0] == ticketV2)
	if err != nil {
		return Ticket{}, err
	}
	// Only one encoding of each ticket is valid (minimal varints).
	if again, err := t.body(); err != nil || !bytes.Equal(again, body) {
		return Ticket{}, badTicket("not in canonical form")
	}
	return t, nil
}

// ticketReader reads length-prefixed fields from a body, checking every
// length against what is left before slicing.
type ticketReader struct {
	b   []byte
	err error
}

func (r *ticketReader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = badTicket("truncated at %s", what)
		return 0
	}
	r.b = r.b[n:]
	if v > max {
		r.err = badTicket("%s is %d, more than %d", what, v, max)
		return 0
	}
	return v
}

func (r *ticketReader) field(what string) []byte {
	n := r.uvarint(what+" length", 1<<16)
	if r.err != nil {
		return nil
	}
	if n == 0 {
		r.err = badTicket("empty %s", what)
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = badTicket("truncated in %s (%d bytes of %d)", what, len(r.b), n)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// decodeTicketBody decodes version 1's body, and with named version 2's.
func decodeTicketBody(body []byte, named bool) (Ticket, error) {
	r := &ticketReader{b: body}
	var t Ticket
	if raw := r.field("root CID"); r.err == nil {
		c, err := cid.Cast(raw)
		if err == nil {
			err = chunker.CheckCID(c)
		}
		if err != nil {
			return Ticket{}, badTicket("root CID: %v", err)
		}
		t.Root = c
	}
	npeers := r.uvarint("peer count", MaxTicketPeers)
	if r.err == nil && npeers == 0 {
		return Ticket{}, badTicket("names no peer")
	}
	for i := uint64(0); i < npeers && r.err == nil; i++ {
		raw := r.field(fmt.Sprintf("peer %d ID", i+1))
		if r.err != nil {
			break
		}
		id, err := libp2ppeer.IDFromBytes(raw)
		if err != nil {
			return Ticket{}, badTicket("peer %d ID: %v", i+1, err)
		}
		naddrs := r.uvarint(fmt.Sprintf("peer %d address count", i+1), MaxTicketAddrs)
		if r.err == nil && naddrs == 0 {
			return Ticket{}, badTicket("peer %d has no address", i+1)
		}
		ai := libp2ppeer.AddrInfo{ID: id}
		for j := uint64(0); j < naddrs && r.err == nil; j++ {
			raw := r.field(fmt.Sprintf("peer %d address %d", i+1, j+1))
			if r.err != nil {
				break
			}
			a, err := ma.NewMultiaddrBytes(raw)
			if err != nil {
				return Ticket{}, badTicket("peer %d address %d: %v", i+1, j+1, err)
			}
			ai.Addrs = append(ai.Addrs, a)
		}
		t.Peers = append(t.Peers, ai)
	}
	if named && r.err == nil {
		t.Name = string(r.field("name"))
		if r.err == nil {
			if err := checkTicketName(t.Name); err != nil {
				return Ticket{}, err
			}
		}
	}
	if r.err != nil {
		return Ticket{}, r.err
	}
	if len(r.b) > 0 {
		return Ticket{}, badTicket("%d bytes left over after the last peer", len(r.b))
	}
	return t, nil
}

// maxTicketOwnAddrs is how many of its own addresses a node puts in a
// ticket: enough for a few interfaces over TCP and QUIC, IPv4 and IPv6.
const maxTicketOwnAddrs = 8

// ticketAddrs picks the addresses a node names in its tickets from its
// listen addresses as Host.Addrs reports them: no unspecified (0.0.0.0,
// ::) or IPv6 link-local address, which no other machine can dial; the
// rest in their order, those other machines can reach first (LAN and
// public before loopback), at most maxTicketOwnAddrs. Loopback addresses
// stay, last: a ticket then also works on the same machine.
func ticketAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out, loop []ma.Multiaddr
	for _, a := range addrs {
		switch {
		case manet.IsIPUnspecified(a), manet.IsIP6LinkLocal(a):
		case manet.IsIPLoopback(a):
			loop = append(loop, a)
		default:
			out = append(out, a)
		}
	}
	out = append(out, loop...)
	if len(out) > maxTicketOwnAddrs {
		out = out[:maxTicketOwnAddrs]
	}
	return out
}

// Ticket returns a ticket for root that names this node, for content the
// repo holds (complete or partial); ErrNotShared otherwise.
func (n *Node) Ticket(ctx context.Context, root cid.Cid) (Ticket, error) {
	rec, err := n.Repo.index.root(ctx, root)
	if err != nil {
		if errors.Is(err, ds.ErrNotFound) {
			return Ticket{}, fmt.Errorf("%s: %w", root, ErrNotShared)
		}
		return Ticket{}, err
	}
	addrs := ticketAddrs(n.Host.Addrs())
	if len(addrs) == 0 {
		return Ticket{}, errors.New("this node has no address another peer could dial")
	}
	t := Ticket{Root: root, Peers: []libp2ppeer.AddrInfo{{ID: n.Host.ID(), Addrs: addrs}}}
	// A name says more than the CID a default get would write; a root
	// fetched under its CID, or named unsafely, goes without.
	if rec.Name != root.String() && checkTicketName(rec.Name) == nil {
		t.Name = rec.Name
	}
	return t, nil
}

// hinted finds providers for a download that was given peers (a ticket's):
// those first, then what next (the DHT) finds.
type hinted struct {
	peers []libp2ppeer.AddrInfo
	next  transfer.Providers
}

// FindProviders yields h.peers, then forwards next's results; the
// channel closes when next's does or ctx ends.
func (h hinted) FindProviders(ctx context.Context, c cid.Cid) <-chan libp2ppeer.AddrInfo {
	out := make(chan libp2ppeer.AddrInfo)
	go func() {
		defer close(out)
		for _, ai := range h.peers {
			select {
			case out <- ai:
			case <-ctx.Done():
				return
			}
		}
		for ai := range h.next.FindProviders(ctx, c) {
			select {
			case out <- ai:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
