package main

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newTicketCommand() *cli.Command {
	return &cli.Command{
		Name:      "ticket",
		Usage:     "print a ticket (the CID plus the running seed's addresses) for content this node holds",
		ArgsUsage: "CID",
		UsageText: "p2pshare ticket bafy...\np2pshare -q ticket bafy...",
		Action: func(c *cli.Context) error {
			root, err := parseCID(c)
			if err != nil {
				return err
			}
			return runTicket(c.Context, c.String("repo"), root, newPrinter(c))
		},
	}
}

// runTicket asks the running seed for a ticket for root and prints
// `ticket <TICKET>` (-q: the ticket alone). Without a running seed it
// fails: a ticket must name a node that listens.
func runTicket(ctx context.Context, repo string, root cid.Cid, p *printer) error {
	cl, err := peer.Dial(repo)
	if err != nil {
		return fmt.Errorf("no seed node runs on %s, and a ticket must name a listening node: start one with p2pshare seed (or use p2pshare share PATH)", repo)
	}
	t, err := cl.Ticket(ctx, root)
	if err != nil {
		return err
	}
	s, err := t.Encode()
	if err != nil {
		return err
	}
	if p.quiet && !p.json {
		fmt.Fprintln(p.out, s)
		return nil
	}
	var addrs []string
	for _, ai := range t.Peers {
		for _, a := range ai.Addrs {
			addrs = append(addrs, a.String()+"/p2p/"+ai.ID.String())
		}
	}
	p.result(ticketEvent{Type: "ticket", CID: root.String(), Ticket: s, Addrs: addrs}, "ticket "+s)
	return nil
}
