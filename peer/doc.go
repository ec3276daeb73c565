// Package peer is the p2pshare node: its libp2p host (identity, TCP and
// QUIC, Noise and TLS, yamux, resource and connection managers, hole
// punching, relay client), its on-disk repo (identity key, config, and an
// index in an embedded pebble store of what it shares: DAG nodes, and for
// each leaf the file, offset and length it lies at), the local API a
// running seed offers the CLI over a unix socket, and the wiring that
// adapts the repo to transfer.BlockStore and transfer.Manifests and the DHT
// to transfer.Providers.
//
// A get is one download (download.go): it owns its output folder through
// os.Root, checks the whole DAG and its claimed size before writing,
// writes each distinct leaf once, keeps a resume record that a kill cannot
// tear, and is its transfer session's BlockStore.
//
// It makes no scheduling decisions (package transfer does) and prints
// nothing (package main does); it returns errors and logs service events
// with log/slog.
package peer
