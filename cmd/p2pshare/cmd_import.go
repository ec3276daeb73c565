package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "verify every block of a CAR file and add its roots: they are then served and provided (at once if a seed runs)",
		ArgsUsage: "FILE.car",
		UsageText: "p2pshare import content.car\n(a CAR from p2pshare export or ipfs dag export; CARv1 or CARv2)",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("import takes exactly one CAR file (got %d arguments)", c.NArg())
			}
			return runImport(c.Context, c.String("repo"), c.Args().First(), newPrinter(c))
		},
	}
}

// runImport imports the CAR at path. A file that cannot be opened (missing,
// unreadable, a folder) is a usage error (exit 2); a file whose content is
// refused (malformed, truncated, a block that does not match its CID, a
// root or a block of a root's DAG missing) is a failure (exit 1), and then
// nothing of it is added.
func runImport(ctx context.Context, repo, path string, p *printer) error {
	f, err := os.Open(path)
	if err != nil {
		return usageError{fmt.Errorf("import: %w", err)}
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return usageError{fmt.Errorf("import: %w", err)}
	}
	if !st.Mode().IsRegular() {
		return usagef("import: %s is not a regular file", path)
	}
	b, closeFn, err := openCARBackend(repo)
	if err != nil {
		return err
	}
	defer closeFn()
	res, err := b.Import(ctx, path)
	if err != nil {
		return err
	}
	for _, r := range res.Roots {
		text := fmt.Sprintf("imported %s  %s", r.CID, humanBytes(r.Size))
		if r.Shared {
			text += "  (already shared)"
		}
		if p.quiet {
			text = r.CID
		}
		p.result(importedEvent{Type: "imported", CID: r.CID, Size: uint64(r.Size), Dir: r.Dir, AlreadyShared: r.Shared,
			Blocks: int(res.Blocks), NewBlocks: int(res.New)}, text)
	}
	return nil
}

var _ carBackend = (*peer.Repo)(nil)
