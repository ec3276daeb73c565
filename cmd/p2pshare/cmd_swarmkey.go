package main

import (
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newSwarmKeyCommand() *cli.Command {
	return &cli.Command{
		Name:      "swarm-key",
		Usage:     "print a new pre-shared key for a private swarm (the /key/swarm/psk/1.0.0/ format of Kubo's swarm.key)",
		UsageText: "p2pshare swarm-key > swarm.key\np2pshare seed --swarm-key swarm.key",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("swarm-key takes no arguments (got %d)", c.NArg())
			}
			key := peer.NewSwarmKey()
			p := newPrinter(c)
			if p.json {
				p.event(swarmKeyEvent{Type: "swarm_key", Key: string(key)})
				return nil
			}
			_, err := p.out.Write(key)
			return err
		},
	}
}
