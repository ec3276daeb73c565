// Package transfer is p2pshare's block exchange: the wire protocol
// /p2pshare/transfer/1.0.0, the server that answers it, and download
// sessions that fetch a root's blocks from every peer that has them.
//
// It knows nothing of how peers are found (Providers), how blocks are
// stored (BlockStore) or how a DAG is laid out (Manifests gives a root's
// leaf list); package peer supplies all three.
//
// # Goals
//
//   - Swarming: a download draws on every peer that holds the root, and a
//     peer serves the leaves it has verified while it is still downloading,
//     so capacity grows with the crowd.
//   - Never idle: one long-lived stream per remote and root, with many
//     requests in flight, sized to each peer's measured rate.
//   - Never corrupt: every block is hashed against its CID before it is
//     stored or served on; a peer that sends a bad block is dropped.
//   - Bounded: message length, requests a remote may queue, and requests
//     in flight are all capped, whatever the file or swarm size.
//
// Non-goals: finding peers (the DHT's job), encryption and authentication
// (libp2p's Noise or TLS secure every connection), and partial blocks
// (blocks are at most 2 MiB and move whole).
//
// # Messages
//
// A client opens a stream with protocol ID and sends HELLO; after that the
// stream carries, in both directions, messages framed as
//
//	uvarint length | type byte | body          (length counts type and body)
//
// A length of 0 or over MaxMessageLen (2 MiB + 64), or over the longest
// message its type can carry (HELLO 129 bytes, WANT 139, HAVE, DONT_HAVE
// and CANCEL 11), is a protocol violation, checked before anything is
// allocated. Unknown types are skipped without being buffered; leftover
// bytes in a known message are a violation. Types 8 to 15 are reserved.
//
//	type  name       direction        body
//	1     HELLO      client → server  root CID (the first message)
//	2     HAVE_MAP   server → client  uvarint n, then ⌈n/8⌉ bytes: bit i%8 of byte i/8 set if the server holds leaf i
//	3     HAVE       server → client  uvarint i: the server now holds leaf i
//	4     WANT       client → server  uvarint request ID, CID
//	5     BLOCK      server → client  uvarint request ID, the block's bytes
//	6     DONT_HAVE  server → client  uvarint request ID
//	7     CANCEL     client → server  uvarint request ID
//
// Only CIDs of codec raw or dag-pb with a full-length sha2-256 multihash
// (or an identity one) are accepted from the network: a HELLO naming any
// other root is a violation, and a WANT naming any other CID is answered
// DONT_HAVE, whatever the store holds under it.
//
// Leaf i is the i-th distinct leaf CID of the root's DAG in depth-first
// order (Manifests, duplicates removed): both sides compute the same list
// from the same DAG. A server that does not know the root answers HAVE_MAP
// with n = 0 and sends HAVEs as it learns; a client may still WANT any CID
// (the DAG's internal nodes are fetched this way), and need not wait for
// the HAVE_MAP to do so: a session's first WANT goes out in the same write
// as its HELLO, and the server reads it once it has sent the HAVE_MAP,
// which always comes first. Replies match requests by
// ID, in any order; a server answers each WANT exactly once (BLOCK or
// DONT_HAVE) unless it was cancelled first.
//
// # Limits and errors
//
//   - A remote may have at most 256 WANTs queued on one stream; a CANCEL
//     frees its WANT's place at once.
//   - What a server keeps for a remote is bounded whatever the remote
//     does: its queued WANTs, one bit per leaf of the root for HAVEs not
//     sent yet (a remote that does not read gets each leaf announced once,
//     in index order, when it reads again), and one block being sent.
//   - Message buffers, and blocks being sent, are reserved in the stream's
//     libp2p resource scope (ServiceName; see ScaleLimits) at medium
//     priority. A stream that finds no memory for 10 s is reset (not a
//     violation).
//   - A stream idle for 5 minutes is closed; a write may take 60 s.
//   - A malformed message, a message in the wrong direction, too many
//     queued WANTs, a BLOCK or DONT_HAVE for a request ID never sent, or a
//     BLOCK larger than MaxBlockSize or that does not hash to the CID
//     asked for is a protocol violation: the stream is reset with
//     network.StreamProtocolViolation, and a client drops that peer from
//     the session for good.
//   - Upload and download rate limits (WithMaxUpload, WithMaxDownload) are
//     token buckets over block bytes, shared by all streams; waiting
//     reservations are served in order, so remotes take turns.
//
// # Scheduling
//
// A session keeps every peer's window full: rarest leaf first across the
// have-maps (random among equals), a window of rate × 2 s worth of
// requests per peer (slow start from 4, at most 32, and at most 64
// outstanding with those given up on), requests a peer sits on for 3×
// their expected time given to others, those of a peer that answers
// nothing for 1.5 s (or three leaves' time at its rate) given to others
// at once and no more sent to it until it answers, and in the endgame (every
// missing leaf requested) the last leaves asked of up to 3 peers when
// their request is overdue (at its peer's rate, behind the requests ahead
// of it) or slower than the new peer should be, the duplicates cancelled
// when one arrives. Near the end, once half the missing leaves would fit
// in the windows, each peer may hold only its share (by measured rate) of
// half the missing leaves, at least 4: the rest wait for whichever link
// frees up first, so the links finish together instead of the last
// leaves queueing behind one of them.
// A request is not moved to a peer that announces the leaf later: a server
// hands a block to the transport as soon as it reaches it in the queue,
// so on a slow link a CANCEL mostly arrives after the block has left and
// the leaf would cross the network twice.
//
// The code follows the same lines: a pure scheduler (scheduler.go: events
// in, requests out, no I/O or clock), one remote per stream that owns its
// reader and writer (remote.go), a peer source that finds and dials peers
// (peers.go), and the Session that joins them and verifies and stores
// what arrives (session.go). Serving: the Service and its one leaf index
// per root (service.go), one serverStream per inbound stream with its
// reader and writer (server.go), each root's crowd of remotes with the
// pure super-seeding decisions (superseed.go), and the last few leaves a
// session verified, which a crowd asks for next and is sent from memory
// (recent.go).
//
// A server serves each stream's queue least-uploaded block first. A node
// that holds every leaf of a root super-seeds it once two remotes fetch
// it: each remote is shown 4 leaves (in its have-map, or as HAVEs for a
// remote that came alone and saw everything), each WANT for one of them
// shows it one more, and each leaf is shown to one remote only. A remote
// is sent only leaves shown to it or to nobody yet (else DONT_HAVE), so
// the node's upload carries only leaves the crowd lacks, and the crowd
// trades the copies. A remote with nothing left to ask for is shown new
// leaves at once, or, once all were shown, half of those shown to another
// remote and not sent yet (so the last leaves leave over several
// connections); a remote that asks for nothing for half a second gives
// its unsent leaves back, and is shown everything if nobody else is being
// served. That is also how super-seeding ends once every leaf was
// uploaded once: remotes are shown the rest as they go idle (idle now
// after an eighth of a second; while nobody else is being served, or at
// their fourth idle in any case), not all at once, so the node's upload
// does not carry copies while the crowd's last leaves are still crossing
// it. Clients need no special
// handling: a super-seeding node looks like a peer that gains leaves as it
// goes, and sometimes changes its mind (DONT_HAVE).
package transfer
