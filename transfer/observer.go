package transfer

import "time"

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
	// PeerBanned is called when a session bans a remote for a protocol
	// violation.
	PeerBanned()
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

func (nopObserver) BlockServed(int)                      {}
func (nopObserver) BlockReceived(int)                    {}
func (nopObserver) VerifyFailed()                        {}
func (nopObserver) PeerBanned()                          {}
func (nopObserver) Lookup()                              {}
func (nopObserver) DownloadStarted()                     {}
func (nopObserver) DownloadFinished(time.Duration, bool) {}
