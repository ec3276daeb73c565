package transfer

import (
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Observer is told of the events an operator counts: blocks served and
// received, blocks that failed verification, peers banned from a session,
// provider lookups, and downloads (sessions) started and finished. The
// peer package turns them into Prometheus metrics; this package knows
// nothing of Prometheus. Methods are called from many goroutines at once
// and must not block.
type Observer interface {
	// BlockServed is called after a block of size bytes was written to a
	// remote.
	BlockServed(bytes int)
	// BlockReceived is called for a block that arrived, passed its CID
	// check and was stored.
	BlockReceived(bytes int)
	// VerifyFailed is called for a block that arrived and did not match
	// its CID (its sender is then banned from the session).
	VerifyFailed()
	// PeerBanned is called when the session fetching root bans remote p
	// for a protocol violation: why says which, detail (possibly nil) what
	// exactly the remote sent.
	PeerBanned(p peer.ID, root cid.Cid, why BanReason, detail error)
	// Lookup is called each time a session asks its Providers for peers.
	Lookup()
	// DownloadStarted is called when a session starts (NewSession), and
	// DownloadFinished when it is closed, with the time it lived and
	// whether its last Download completed.
	DownloadStarted()
	DownloadFinished(d time.Duration, ok bool)
}

// WithObserver makes the service report its events to o.
func WithObserver(o Observer) Option {
	return func(s *Service) {
		if o != nil {
			s.obs = o
		}
	}
}

type nopObserver struct{}

func (nopObserver) BlockServed(int)                               {}
func (nopObserver) BlockReceived(int)                             {}
func (nopObserver) VerifyFailed()                                 {}
func (nopObserver) PeerBanned(peer.ID, cid.Cid, BanReason, error) {}
func (nopObserver) Lookup()                                       {}
func (nopObserver) DownloadStarted()                              {}
func (nopObserver) DownloadFinished(time.Duration, bool)          {}

// BanReason says why a session banned a remote. Its value is a short name,
// fit for a metric label; String describes it.
type BanReason string

// The protocol violations a session bans a remote for.
const (
	// BanBadBlock: a BLOCK that does not match its CID, or is too large.
	BanBadBlock BanReason = "bad_block"
	// BanMalformed: a message that does not decode (see ErrProtocol).
	BanMalformed BanReason = "malformed"
	// BanUnsolicited: a BLOCK or DONT_HAVE answering no request ever made.
	BanUnsolicited BanReason = "unsolicited"
	// BanUnexpected: a message only a downloader may send (HELLO, WANT,
	// CANCEL) or sent only once (HAVE_MAP).
	BanUnexpected BanReason = "unexpected_message"
)

// String describes r for people, as logs name it.
func (r BanReason) String() string {
	switch r {
	case BanBadBlock:
		return "block does not match its CID"
	case BanMalformed:
		return "malformed message"
	case BanUnsolicited:
		return "reply to a request never made"
	case BanUnexpected:
		return "message a server may not send"
	}
	return string(r)
}
