package main

import "github.com/p2pshare/p2pshare/peer"

// The --json events: one struct per event type, each printed as one JSON
// line whose "type" field names it. Scripts and the testnet parse these
// field names: add fields, never rename or drop one (TestEventFields pins
// them).

// addStatusEvent is add's progress: bytes hashed so far of one path.
type addStatusEvent struct {
	Type      string `json:"type"` // "status"
	Time      string `json:"time"` // RFC 3339, UTC
	Path      string `json:"path"`
	BytesDone int64  `json:"bytes_done"`
}

// getStatusEvent is get's progress.
type getStatusEvent struct {
	Type       string `json:"type"` // "status"
	Time       string `json:"time"` // RFC 3339, UTC
	BytesDone  uint64 `json:"bytes_done"`
	BytesTotal uint64 `json:"bytes_total"`
	Peers      int    `json:"peers"` // peers the download is using now
}

// addedEvent is one root that add or share added.
type addedEvent struct {
	Type   string `json:"type"` // "added"
	CID    string `json:"cid"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Ticket string `json:"ticket,omitempty"` // when a node serves it
}

// addSummaryEvent ends add and share: every root added.
type addSummaryEvent struct {
	Type  string       `json:"type"` // "summary"
	Added []addedEvent `json:"added"`
}

// getSummaryEvent ends a successful get.
type getSummaryEvent struct {
	Type    string            `json:"type"` // "summary"
	CID     string            `json:"cid"`
	Path    string            `json:"path"`
	Bytes   uint64            `json:"bytes"`
	Seconds float64           `json:"seconds"`
	From    map[string]uint64 `json:"from"`   // bytes by peer ID
	Wasted  uint64            `json:"wasted"` // bytes received twice or after a cancel
	// WastedFrom is Wasted by peer ID (peers that wasted none left out).
	WastedFrom map[string]uint64 `json:"wasted_from,omitempty"`
	// RelayedFrom is the part of From, by peer ID, that came through a
	// circuit relay, not over a direct connection (peers that relayed
	// none left out).
	RelayedFrom map[string]uint64 `json:"relayed_from,omitempty"`
}

// exportedEvent is the CAR that export wrote to a file.
type exportedEvent struct {
	Type   string `json:"type"` // "exported"
	CID    string `json:"cid"`
	Path   string `json:"path"`
	Blocks int64  `json:"blocks"`
	Bytes  int64  `json:"bytes"`
}

// importedEvent is one root that import added.
type importedEvent struct {
	Type          string `json:"type"` // "imported"
	CID           string `json:"cid"`
	Size          uint64 `json:"size"`
	Dir           bool   `json:"dir"`
	AlreadyShared bool   `json:"already_shared"`
	Blocks        int    `json:"blocks"`
	NewBlocks     int    `json:"new_blocks"`
}

// errorEvent is a failure, printed on stdout beside the one line on
// stderr.
type errorEvent struct {
	Type     string `json:"type"` // "error"
	Message  string `json:"message"`
	ExitCode int    `json:"exit_code"`
}

// initEvent is init's result.
type initEvent struct {
	Type   string `json:"type"` // "id"
	PeerID string `json:"peer_id"`
}

// idEvent is id's result.
type idEvent struct {
	Type   string   `json:"type"` // "id"
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"` // the running seed's; empty when none runs
}

// rootEvent is one line of ls.
type rootEvent struct {
	Type  string `json:"type"` // "root"
	CID   string `json:"cid"`
	Name  string `json:"name"`
	Size  uint64 `json:"size"`
	State string `json:"state"`
	Path  string `json:"path"`
}

// removedEvent is rm's result.
type removedEvent struct {
	Type string `json:"type"` // "removed"
	CID  string `json:"cid"`
}

// statusEvent is status's result: the node's Status (NAT "unknown" also
// when no seed runs) and whether a seed runs.
type statusEvent struct {
	Type string `json:"type"` // "status"
	peer.Status
	Running bool `json:"running"`
}

// listeningEvent is one address seed listens on.
type listeningEvent struct {
	Type string `json:"type"` // "listening"
	Addr string `json:"addr"`
}

// swarmKeyEvent is swarm-key's result.
type swarmKeyEvent struct {
	Type string `json:"type"` // "swarm_key"
	Key  string `json:"key"`
}

// ticketEvent is ticket's result.
type ticketEvent struct {
	Type   string   `json:"type"` // "ticket"
	CID    string   `json:"cid"`
	Ticket string   `json:"ticket"`
	Addrs  []string `json:"addrs"`
}

// peerEvent is one connected peer of the running seed (peers).
type peerEvent struct {
	Type string `json:"type"` // "peer"
	peer.PeerInfo
}

// configEvent is one setting that config show prints.
type configEvent struct {
	Type   string `json:"type"` // "config"
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Source string `json:"source"` // flag, env, file, default (or a "+" of them)
}
