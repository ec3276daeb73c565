package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/chunker"
	"github.com/p2pshare/p2pshare/peer"
)

// AddOptions are the flags of add.
type AddOptions struct {
	Paths []string
	peer.AddOptions
}

func newAddCommand() *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "index files or folders in place and print their CIDs (and tickets, when a seed runs)",
		ArgsUsage: "PATH...",
		UsageText: "p2pshare add video.mkv\np2pshare add -q --hidden project/\np2pshare add --only-hash iso.img",
		Flags: append(addFlags(),
			&cli.BoolFlag{Name: "only-hash", Usage: "print the CID, store nothing"},
		),
		Action: func(c *cli.Context) error {
			opts := AddOptions{Paths: c.Args().Slice(), AddOptions: addOptions(c)}
			opts.OnlyHash = c.Bool("only-hash")
			return runAdd(c.Context, c.String("repo"), opts, newPrinter(c))
		},
	}
}

// addFlags are the flags of add that share takes too.
func addFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "copy", Usage: "keep a copy of the data in the repo instead of indexing in place"},
		&cli.IntFlag{Name: "chunk-size", Usage: "fixed chunk size in bytes", Value: chunker.DefaultChunkSize},
		&cli.StringFlag{Name: "chunker", Usage: "chunker: size (fixed) or buzhash (content-defined)", Value: "size"},
		&cli.BoolFlag{Name: "hidden", Usage: "include hidden files (dot-files) in folders"},
	}
}

// addOptions parses addFlags.
func addOptions(c *cli.Context) peer.AddOptions {
	return peer.AddOptions{
		Options: chunker.Options{ChunkSize: c.Int("chunk-size"), Chunker: c.String("chunker"), Hidden: c.Bool("hidden")},
		Copy:    c.Bool("copy"),
	}
}

// checkAdd refuses, as a usage error, what add cannot do: no path, bad
// options, a path that does not exist.
func checkAdd(opts AddOptions, cmd string) error {
	if len(opts.Paths) == 0 {
		return usagef("%s needs at least one PATH", cmd)
	}
	if err := opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	for _, path := range opts.Paths {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return usagef("%s: no such file or folder", path)
		}
	}
	return nil
}

// adder adds a path: the seed's API client, the repo, or a node of this
// process.
type adder interface {
	Add(ctx context.Context, path string, opts peer.AddOptions) (peer.AddResult, error)
}

// ticketer makes tickets: a running seed (API client) or a node of this
// process. A plain repo cannot: a ticket must name a listening node.
type ticketer interface {
	Ticket(ctx context.Context, root cid.Cid) (peer.Ticket, error)
}

func runAdd(ctx context.Context, repo string, opts AddOptions, p *printer) error {
	if err := checkAdd(opts, "add"); err != nil {
		return err
	}
	var b repoBackend
	if opts.OnlyHash {
		b = hashOnly{}
	} else {
		var closeFn func()
		var err error
		b, closeFn, err = openBackend(repo)
		if err != nil {
			return err
		}
		defer closeFn()
	}
	tk, _ := b.(ticketer) // a seed runs: print tickets too
	return addPaths(ctx, b, tk, opts, p, false)
}

// addPaths adds each path through b and prints `added <CID> <name>` for
// it, then `ticket <TICKET>` if tk is set (--json: a ticket field). -q
// prints the CIDs alone, or with quietTickets the tickets alone.
func addPaths(ctx context.Context, b adder, tk ticketer, opts AddOptions, p *printer, quietTickets bool) error {
	var added []map[string]any
	for _, path := range opts.Paths {
		o := opts.AddOptions
		o.Progress = func(n int64) {
			p.progress(map[string]any{"path": path, "bytes_done": n}, fmt.Sprintf("adding %s: %s", displayName(path), humanBytes(uint64(n))))
		}
		res, err := b.Add(ctx, path, o)
		if err != nil {
			return fmt.Errorf("adding %s: %w", path, err)
		}
		ev := map[string]any{"cid": res.CID.String(), "name": res.Name, "size": res.Size}
		ticket := ""
		if tk != nil {
			t, err := tk.Ticket(ctx, res.CID)
			if err == nil {
				ticket, err = t.Encode()
			}
			if err != nil {
				return fmt.Errorf("making a ticket for %s: %w", res.CID, err)
			}
			ev["ticket"] = ticket
		}
		added = append(added, ev)
		if p.quiet && !p.json {
			if quietTickets {
				fmt.Fprintln(p.out, ticket)
			} else {
				fmt.Fprintln(p.out, res.CID)
			}
			continue
		}
		text := fmt.Sprintf("added %s %s", res.CID, displayName(res.Name))
		if ticket != "" {
			text += "\nticket " + ticket
		}
		p.result("added", ev, text)
	}
	p.event("summary", map[string]any{"added": added})
	return nil
}

// hashOnly computes CIDs without a repo (--only-hash).
type hashOnly struct{ repoBackend }

func (hashOnly) Add(ctx context.Context, path string, opts peer.AddOptions) (peer.AddResult, error) {
	return peer.HashPath(ctx, path, opts)
}
