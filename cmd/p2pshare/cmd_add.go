package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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
	var added []addedEvent
	for _, path := range opts.Paths {
		o := opts.AddOptions
		var total uint64
		if p.bars() {
			total = pathSize(path, o.Hidden)
		}
		m := p.addMeter(path, total)
		o.Progress = func(n int64) { m.update(uint64(n), total, 0) }
		res, err := b.Add(ctx, path, o)
		m.end()
		if err != nil {
			return fmt.Errorf("adding %s: %w", path, err)
		}
		ev := addedEvent{Type: "added", CID: res.CID.String(), Name: res.Name, Size: res.Size}
		if tk != nil {
			t, err := tk.Ticket(ctx, res.CID)
			if err == nil {
				ev.Ticket, err = t.Encode()
			}
			if err != nil {
				return fmt.Errorf("making a ticket for %s: %w", res.CID, err)
			}
		}
		added = append(added, ev)
		if p.quiet && !p.json {
			if quietTickets {
				fmt.Fprintln(p.out, ev.Ticket)
			} else {
				fmt.Fprintln(p.out, res.CID)
			}
			continue
		}
		text := fmt.Sprintf("added %s %s", res.CID, displayName(res.Name))
		if ev.Ticket != "" {
			text += "\nticket " + ev.Ticket
		}
		p.result(ev, text)
	}
	p.event(addSummaryEvent{Type: "summary", Added: added})
	return nil
}

// pathSize is about what adding path hashes: the bytes of its regular
// files (without dot-files unless hidden), for the bar's total and ETA.
// Errors are left to add to report; what cannot be read counts as 0.
func pathSize(path string, hidden bool) uint64 {
	var n uint64
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p != path && !hidden && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// hashOnly computes CIDs without a repo (--only-hash).
type hashOnly struct{ repoBackend }

func (hashOnly) Add(ctx context.Context, path string, opts peer.AddOptions) (peer.AddResult, error) {
	return peer.HashPath(ctx, path, opts)
}
