package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

// ShareOptions are the flags of share.
type ShareOptions struct {
	AddOptions
	peer.NodeOptions
}

func newShareCommand() *cli.Command {
	return &cli.Command{
		Name:      "share",
		Usage:     "add files or folders, print a ticket for each and serve them until Ctrl-C (through the running seed if one runs)",
		ArgsUsage: "PATH...",
		UsageText: "p2pshare share report.pdf photos/\n  (then, on the other machine: p2pshare get p2ps2...)",
		Flags: append(addFlags(),
			listenFlag(),
			bootstrapFlag,
			swarmKeyFlag,
			noMDNSFlag, logLevelFlag,
			maxUploadFlag,
		),
		Action: func(c *cli.Context) error {
			opts := ShareOptions{AddOptions: AddOptions{Paths: c.Args().Slice(), AddOptions: addOptions(c)}}
			var err error
			if opts.NodeOptions, err = nodeFlags(c); err != nil {
				return err
			}
			return runShare(c.Context, c.String("repo"), opts, newPrinter(c))
		},
	}
}

// runShare adds the paths and prints `added <CID> <name>` and `ticket
// <TICKET>` for each (-q: the tickets alone). With a seed running on the
// repo it adds through the seed, which serves them, and returns. Else it
// runs a node of its own, as seed does but printing no listening lines,
// until ctx ends (Ctrl-C, SIGTERM): that is how share is meant to end, so
// it is a clean stop (exit 0), as for seed.
func runShare(ctx context.Context, repo string, opts ShareOptions, p *printer) error {
	if err := checkAdd(opts.AddOptions, "share"); err != nil {
		return err
	}
	if cl, err := peer.Dial(repo); err == nil {
		if err := addPaths(ctx, cl, cl, opts.AddOptions, p, true); err != nil {
			return err
		}
		if !p.json && !p.quiet {
			fmt.Fprintln(p.errw, "shared through the running seed node")
		}
		return nil
	}
	return serveNode(ctx, repo, opts.NodeOptions, func(n *peer.Node) error {
		if err := addPaths(ctx, n, n, opts.AddOptions, p, true); err != nil {
			return err
		}
		if !p.json && !p.quiet {
			fmt.Fprintln(p.errw, "sharing; press Ctrl-C to stop")
		}
		return nil
	})
}
