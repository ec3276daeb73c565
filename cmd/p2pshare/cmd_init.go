package main

import (
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newInitCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create the repo (identity and config) if absent and print the peer ID",
		UsageText: "p2pshare init\np2pshare --repo /srv/p2pshare init",
		Action: func(c *cli.Context) error {
			id, err := peer.Init(c.String("repo"))
			if err != nil {
				return err
			}
			newPrinter(c).result(initEvent{Type: "id", PeerID: id.String()}, id.String())
			return nil
		},
	}
}

func newIDCommand() *cli.Command {
	return &cli.Command{
		Name:  "id",
		Usage: "print the peer ID, and the addresses of the running seed node if one runs",
		Action: func(c *cli.Context) error {
			p := newPrinter(c)
			if cl, err := peer.Dial(c.String("repo")); err == nil {
				st, err := cl.Status(c.Context)
				if err != nil {
					return err
				}
				text := st.PeerID
				for _, a := range st.Addrs {
					text += "\n" + a
				}
				p.result(idEvent{Type: "id", PeerID: st.PeerID, Addrs: st.Addrs}, text)
				return nil
			}
			id, err := peer.Init(c.String("repo"))
			if err != nil {
				return err
			}
			p.result(idEvent{Type: "id", PeerID: id.String(), Addrs: []string{}}, id.String())
			return nil
		},
	}
}
