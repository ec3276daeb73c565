package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newPeersCommand() *cli.Command {
	return &cli.Command{
		Name:      "peers",
		Usage:     "the running seed's connected peers: address, direction, latency, bytes and current rate up and down",
		UsageText: "p2pshare peers\np2pshare --json peers | jq -r 'select(.direction == \"inbound\") | .peer_id'",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("peers takes no arguments (got %d)", c.NArg())
			}
			return runPeers(c.Context, c.String("repo"), newPrinter(c))
		},
	}
}

// runPeers prints the running seed's connected peers: a table, or with
// --json one peer event per peer (-q: the peer IDs alone). It needs a
// running seed: a repo alone has no connections.
func runPeers(ctx context.Context, repo string, p *printer) error {
	cl, err := peer.Dial(repo)
	if err != nil {
		return fmt.Errorf("no seed node runs on %s, and only a running node has peers: start one with p2pshare seed", repo)
	}
	peers, err := cl.Peers(ctx)
	if err != nil {
		return err
	}
	switch {
	case p.json:
		for _, pi := range peers {
			p.event(peerEvent{Type: "peer", PeerInfo: pi})
		}
	case p.quiet:
		for _, pi := range peers {
			fmt.Fprintln(p.out, pi.PeerID)
		}
	default:
		fmt.Fprint(p.out, peersTable(peers))
	}
	return nil
}

// peersTable lays peers out as a table, one line per peer:
//
//	peer          direction  latency   up       down     rate up   rate down  address
//	12D3KooW...   inbound    0.3 ms    4.0 MiB  2.1 KiB  1.2 MiB/s    0 B/s   /ip4/127.0.0.1/tcp/4001
func peersTable(peers []peer.PeerInfo) string {
	if len(peers) == 0 {
		return "no connected peers\n"
	}
	var sb strings.Builder
	row := func(cols ...string) {
		fmt.Fprintf(&sb, "%-52s  %-9s  %9s  %10s  %10s  %12s  %12s  %s\n", toAny(cols)...)
	}
	row("peer", "direction", "latency", "up", "down", "rate up", "rate down", "address")
	for _, pi := range peers {
		lat := "?"
		if pi.LatencyMS > 0 {
			lat = fmt.Sprintf("%.1f ms", pi.LatencyMS)
		}
		row(pi.PeerID, pi.Direction, lat, humanBytes(uint64(pi.BytesUp)), humanBytes(uint64(pi.BytesDown)),
			humanBytes(uint64(pi.RateUp))+"/s", humanBytes(uint64(pi.RateDown))+"/s", displayName(pi.Addr))
	}
	return sb.String()
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
