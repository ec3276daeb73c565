package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newLsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the shared roots: CID, size, state (complete, partial, missing, changed) and name",
		Action: func(c *cli.Context) error {
			b, closeFn, err := openBackend(c.String("repo"))
			if err != nil {
				return err
			}
			defer closeFn()
			roots, err := b.List(c.Context)
			if err != nil {
				return err
			}
			p := newPrinter(c)
			for _, r := range roots {
				p.result(rootEvent{Type: "root", CID: r.CID, Name: r.Name, Size: r.Size, State: r.State, Path: r.Path},
					strings.Join([]string{r.CID, fmt.Sprintf("%10s", humanBytes(r.Size)), fmt.Sprintf("%-8s", r.State), displayName(r.Name)}, "  "))
			}
			return nil
		},
	}
}

func newRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "stop sharing a root (never deletes your files)",
		ArgsUsage: "CID",
		Action: func(c *cli.Context) error {
			root, err := parseCID(c)
			if err != nil {
				return err
			}
			b, closeFn, err := openBackend(c.String("repo"))
			if err != nil {
				return err
			}
			defer closeFn()
			if err := b.Remove(c.Context, root); err != nil {
				return err
			}
			newPrinter(c).result(removedEvent{Type: "removed", CID: root.String()}, "removed "+root.String())
			return nil
		},
	}
}

func newStatusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "peer ID, addresses, connected peers, routing table size, roots provided, bytes up and down, NAT state and LAN peers",
		Action: func(c *cli.Context) error {
			p := newPrinter(c)
			st, running, err := nodeStatus(c.Context, c.String("repo"))
			if err != nil {
				return err
			}
			ev := statusEvent{Type: "status", Status: st, Running: running}
			if ev.NAT == "" {
				ev.NAT = "unknown"
			}
			if !running {
				ev.Addrs = []string{}
				p.result(ev, fmt.Sprintf("peer ID:        %s\nseed node:      not running (start one with p2pshare seed)\nroots:          %d", st.PeerID, st.Roots))
				return nil
			}
			nat := ev.NAT
			if ev.Relayed {
				nat += ", reachable through a relay"
			}
			lan := "off (--no-mdns)"
			if ev.MDNS {
				lan = fmt.Sprintf("%d (mDNS)", ev.LANPeers)
			}
			text := fmt.Sprintf("peer ID:        %s\naddresses:      %s\npeers:          %d\nrouting table:  %d\nroots:          %d\nbytes up/down:  %s / %s\nNAT:            %s\nLAN peers:      %s",
				st.PeerID, strings.Join(st.Addrs, "\n                "), st.Peers, st.RoutingTable, st.Roots, humanBytes(uint64(st.BytesUp)), humanBytes(uint64(st.BytesDown)), nat, lan)
			p.result(ev, text)
			return nil
		},
	}
}

// nodeStatus asks the running seed for its status, or reads what the repo
// alone can tell.
func nodeStatus(ctx context.Context, repo string) (st peer.Status, running bool, err error) {
	if cl, err := peer.Dial(repo); err == nil {
		st, err := cl.Status(ctx)
		return st, true, err
	}
	r, err := openRepo(repo)
	if err != nil {
		return st, false, err
	}
	defer r.Close()
	roots, err := r.List(ctx)
	if err != nil {
		return st, false, err
	}
	return peer.Status{PeerID: r.ID.String(), Roots: len(roots)}, false, nil
}
