package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

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
		Usage:     "index files or folders in place and print their CIDs",
		ArgsUsage: "PATH...",
		UsageText: "p2pshare add video.mkv\np2pshare add -q --hidden project/\np2pshare add --only-hash iso.img",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "copy", Usage: "keep a copy of the data in the repo instead of indexing in place"},
			&cli.IntFlag{Name: "chunk-size", Usage: "fixed chunk size in bytes", Value: chunker.DefaultChunkSize},
			&cli.StringFlag{Name: "chunker", Usage: "chunker: size (fixed) or buzhash (content-defined)", Value: "size"},
			&cli.BoolFlag{Name: "hidden", Usage: "include hidden files (dot-files) in folders"},
			&cli.BoolFlag{Name: "only-hash", Usage: "print the CID, store nothing"},
		},
		Action: func(c *cli.Context) error {
			opts := AddOptions{Paths: c.Args().Slice(), AddOptions: peer.AddOptions{
				Options:  chunker.Options{ChunkSize: c.Int("chunk-size"), Chunker: c.String("chunker"), Hidden: c.Bool("hidden")},
				Copy:     c.Bool("copy"),
				OnlyHash: c.Bool("only-hash"),
			}}
			return runAdd(c.Context, c.String("repo"), opts, newPrinter(c))
		},
	}
}

func runAdd(ctx context.Context, repo string, opts AddOptions, p *printer) error {
	if len(opts.Paths) == 0 {
		return usagef("add needs at least one PATH")
	}
	if err := opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	for _, path := range opts.Paths {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return usagef("%s: no such file or folder", path)
		}
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
		added = append(added, ev)
		if p.quiet && !p.json {
			fmt.Fprintln(p.out, res.CID)
			continue
		}
		p.result("added", ev, fmt.Sprintf("added %s %s", res.CID, displayName(res.Name)))
	}
	p.event("summary", map[string]any{"added": added})
	return nil
}

// hashOnly computes CIDs without a repo (--only-hash).
type hashOnly struct{ repoBackend }

func (hashOnly) Add(ctx context.Context, path string, opts peer.AddOptions) (peer.AddResult, error) {
	return peer.HashPath(ctx, path, opts)
}
