package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

// carBackend is what export and import need: the running seed node
// (through its local API; the repo's datastore is then the seed's alone)
// or the repo opened directly.
type carBackend interface {
	Export(ctx context.Context, root cid.Cid, w io.Writer) (peer.ExportStats, error)
	Import(ctx context.Context, path string) (peer.ImportResult, error)
}

func openCARBackend(dir string) (carBackend, func(), error) {
	if cl, err := peer.Dial(dir); err == nil {
		return cl, func() {}, nil
	}
	r, err := openRepo(dir)
	if err != nil {
		return nil, nil, err
	}
	return r, func() { r.Close() }, nil
}

// ExportOptions are export's flags.
type ExportOptions struct {
	Repo string
	Out  string // "" or "-": stdout
}

func newExportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write the DAG of a CID as a CARv1 (root, then every block once, depth-first) to stdout or -o FILE",
		ArgsUsage: "CID",
		UsageText: "p2pshare export bafy... > content.car\np2pshare export bafy... -o content.car\n(then: ipfs dag import content.car, or p2pshare import content.car elsewhere)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the CAR to this file (written under a temporary name, renamed when complete)", TakesFile: true},
		},
		Action: func(c *cli.Context) error {
			root, err := parseCID(c)
			if err != nil {
				return err
			}
			return runExport(c.Context, root, ExportOptions{Repo: c.String("repo"), Out: c.String("output")}, newPrinter(c), os.Stdout)
		},
	}
}

func runExport(ctx context.Context, root cid.Cid, opts ExportOptions, p *printer, stdout *os.File) error {
	toStdout := opts.Out == "" || opts.Out == "-"
	if toStdout && isTerminal(stdout) {
		return usagef("refusing to write a CAR to a terminal: redirect stdout (p2pshare export %s > file.car) or use -o FILE", root)
	}
	b, closeFn, err := openCARBackend(opts.Repo)
	if err != nil {
		return err
	}
	defer closeFn()
	if toStdout {
		_, err := b.Export(ctx, root, stdout)
		return err
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return err
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return usagef("-o %s is a folder; give a file name", opts.Out)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".p2pshare-export-*")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return usageError{fmt.Errorf("-o %s: %w", opts.Out, err)}
		}
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // harmless once renamed
	st, err := b.Export(ctx, root, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, out)
	}
	if err != nil {
		return err
	}
	p.result(exportedEvent{Type: "exported", CID: root.String(), Path: out, Blocks: int64(st.Blocks), Bytes: int64(st.Bytes)},
		fmt.Sprintf("exported %s to %s (%d blocks, %s)", root, out, st.Blocks, humanBytes(uint64(st.Bytes))))
	return nil
}

// isTerminal reports whether f is a terminal (a character device other
// than /dev/null).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}
