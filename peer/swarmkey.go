package peer

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Private swarms: a pre-shared key (PSK) in the /key/swarm/psk/1.0.0/
// format of Kubo's swarm.key,
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits: 32 random bytes>
//
// puts a node in the private network of the peers that hold the same key:
// go-libp2p encrypts every connection with it (XSalsa20, below TLS or
// Noise), so a peer without the key, or with another one, fails the
// handshake and never reaches the DHT or the transfer protocol.

// ErrBadSwarmKey is returned by LoadSwarmKey for a file that is not a
// /key/swarm/psk/1.0.0/ key. It is a usage error (IsUsage).
var ErrBadSwarmKey = errors.New("malformed swarm key")

// ErrNoTCPListen is returned by Start when a swarm key is set and no TCP
// listen address is left: private networks run over TCP only. It is a
// usage error (IsUsage).
var ErrNoTCPListen = errors.New("a private swarm runs over TCP only (go-libp2p has no pre-shared keys for QUIC): no TCP listen address given")

// ErrHandshake is matched (errors.Is) by a HandshakeError.
var ErrHandshake = errors.New("connection handshake failed")

// HandshakeError is returned by Start when a bootstrap peer was reached
// but the connection handshake with it failed. That is what a swarm key
// mismatch looks like: one side has a key the other lacks, or they hold
// different keys (go-libp2p cannot tell which, as the pre-shared key layer
// has no handshake of its own: the garbled bytes make the security
// negotiation after it fail).
type HandshakeError struct {
	Peer libp2ppeer.ID
	// Private is true when this node used a swarm key.
	Private bool
	// Reason is the transport's message, on one line.
	Reason string
}

// Error says which peer could not be reached and why.
func (e *HandshakeError) Error() string {
	return fmt.Sprintf("cannot connect to %s: %s", e.Peer, e.Reason)
}

// Is makes errors.Is(err, ErrHandshake) true.
func (e *HandshakeError) Is(target error) bool { return target == ErrHandshake }

// handshakeError finds, in a dial error (possibly joined with others), a
// peer whose address answered but whose handshake failed. go-libp2p has
// no typed error for this: the upgrader's "failed to negotiate security
// protocol" is the only sign.
func handshakeError(err error, private bool) *HandshakeError {
	var found *HandshakeError
	var walk func(error)
	walk = func(err error) {
		if err == nil || found != nil {
			return
		}
		if de, ok := err.(*swarm.DialError); ok {
			for _, te := range de.DialErrors {
				if te.Cause != nil && strings.Contains(te.Cause.Error(), "failed to negotiate security protocol") {
					found = &HandshakeError{Peer: de.Peer, Private: private, Reason: oneLine(te.Cause.Error())}
					return
				}
			}
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return found
}

// NewSwarmKey returns a new random swarm key file, in the
// /key/swarm/psk/1.0.0/ base16 format Kubo's swarm.key uses.
func NewSwarmKey() []byte {
	var key [32]byte
	rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return []byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hex.EncodeToString(key[:]) + "\n")
}

// LoadSwarmKey reads and decodes the swarm key file at path. A missing
// file gives an error matching fs.ErrNotExist, a malformed one
// ErrBadSwarmKey; both are usage errors.
func LoadSwarmKey(path string) (pnet.PSK, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading swarm key: %w", err)
	}
	return ParseSwarmKey(path, raw)
}

// ParseSwarmKey decodes a swarm key file's contents (name is used in the
// error only). Besides base16, it takes the /base64/ and /bin/ encodings
// go-libp2p and Kubo accept.
func ParseSwarmKey(name string, raw []byte) (pnet.PSK, error) {
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(raw))
	if err != nil {
		reason := err.Error()
		var hexErr hex.InvalidByteError
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.As(err, &hexErr) && (hexErr == '\n' || hexErr == '\r') {
			reason = "too short" // fewer than 64 hex digits before the line ends
		}
		return nil, fmt.Errorf("%w %s: %s (want the /key/swarm/psk/1.0.0/ format; make one with p2pshare swarm-key)", ErrBadSwarmKey, name, oneLine(reason))
	}
	return psk, nil
}

// oneLine quotes s if it holds anything but printable characters, so a
// file's or a peer's bytes cannot break a one-line message or drive the
// terminal.
func oneLine(s string) string {
	if q := fmt.Sprintf("%q", s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

// PrivateListen splits addrs into the TCP addresses a private swarm can
// listen on and the rest (QUIC, WebTransport, WebRTC: go-libp2p refuses a
// pre-shared key on them).
func PrivateListen(addrs []ma.Multiaddr) (tcp, other []ma.Multiaddr) {
	for _, a := range addrs {
		if isTCP(a) {
			tcp = append(tcp, a)
		} else {
			other = append(other, a)
		}
	}
	return tcp, other
}

// isTCP reports whether a is a plain TCP address: an IP or DNS name, then
// /tcp/PORT, and nothing on top.
func isTCP(a ma.Multiaddr) bool {
	if len(a) != 2 || a[1].Protocol().Code != ma.P_TCP {
		return false
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		return true
	}
	return false
}
