package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

// GetOptions are the flags of get.
type GetOptions struct {
	Root cid.Cid
	// Path names a file or folder inside Root to fetch alone ("" for all).
	Path string
	// Peers hold Root (a ticket's): they are dialed first, and a node of
	// get's own joins the DHT through them too.
	Peers   []libp2ppeer.AddrInfo
	Out     string
	Force   bool
	Timeout time.Duration
	Seed    bool
	// Verbose adds a table of the peers that sent data to the summary.
	Verbose bool
	peer.NodeOptions
}

func newGetCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "find peers, fetch in parallel, verify every block, write to PATH",
		ArgsUsage: "CID|TICKET[/PATH]",
		UsageText: "p2pshare get p2ps2... (a ticket from p2pshare share, add or ticket)\np2pshare get bafy... -o film.mkv --bootstrap /ip4/192.0.2.1/tcp/4001/p2p/12D3Koo...\nP2PSHARE_BOOTSTRAP=/ip4/... p2pshare get --seed bafy...\np2pshare get bafy.../photos/2024 (one folder or file of a shared folder)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output path (default: the name a ticket gives, else the CID, or the last element of a path CID/sub/file, in the current folder)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing different file at the output path"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up when no provider is found, or nothing arrives, for this long", Value: peer.DefaultGetTimeout},
			&cli.BoolFlag{Name: "seed", Usage: "keep serving after completion until interrupted"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "after the summary, print a table of the peers that sent data: bytes, share, wasted"},
			bootstrapFlag,
			swarmKeyFlag,
			noMDNSFlag, logLevelFlag,
			listenFlag("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"),
			maxUploadFlag, maxDownloadFlag,
		},
		Action: func(c *cli.Context) error {
			var opts GetOptions
			t, path, err := parseTarget(c)
			if err != nil {
				return err
			}
			opts.Root, opts.Path, opts.Peers = t.Root, path, t.Peers
			if opts.NodeOptions, err = nodeFlags(c); err != nil {
				return err
			}
			opts.Out, opts.Force, opts.Timeout, opts.Seed = c.String("output"), c.Bool("force"), c.Duration("timeout"), c.Bool("seed")
			if opts.Out == "" && path == "" {
				opts.Out = t.Name // a named ticket's root is written under its name
			}
			opts.Verbose = c.Bool("verbose")
			return runGet(c.Context, c.String("repo"), opts, newPrinter(c))
		},
	}
}

// getter is what get needs: a running seed (API client) or a node of its own.
type getter interface {
	Get(ctx context.Context, root cid.Cid, opts peer.GetOptions) (peer.GetResult, error)
}

func runGet(ctx context.Context, repo string, opts GetOptions, p *printer) error {
	gopts := peer.GetOptions{Path: opts.Path, Out: opts.Out, Force: opts.Force, Timeout: opts.Timeout, Peers: opts.Peers}
	m := p.getMeter("get")
	var endOnce sync.Once
	endMeter := func() { endOnce.Do(m.end) }
	defer endMeter() // first, if nothing else ends it: the bar goes before an error is printed
	gopts.Progress = func(g peer.GetProgress) { m.update(g.BytesDone, g.BytesTotal, g.Peers) }
	var g getter
	var node *peer.Node
	log := opts.NodeOptions.Log
	peer.Step(log, "get started")
	if cl, err := peer.Dial(repo); err == nil && !opts.Seed {
		g = cl
	} else {
		id, err := peer.Init(repo)
		if err != nil {
			return err
		}
		nopts := opts.NodeOptions
		nopts.AutoNATService = opts.Seed // a node that stays to seed answers others' checks
		nopts.Bootstrap = append([]libp2ppeer.AddrInfo{}, nopts.Bootstrap...)
		for _, ai := range opts.Peers {
			if ai.ID != id { // a ticket of this repo's own node
				nopts.Bootstrap = append(nopts.Bootstrap, ai)
			}
		}
		node, err = openAndStartNode(ctx, repo, nopts)
		if errors.Is(err, peer.ErrNoBootstrap) && len(opts.Peers) > 0 {
			return fmt.Errorf("%w (does the node that made the ticket still run, and can this machine reach it?)", err)
		}
		if err != nil {
			return err
		}
		peer.Step(log, "node started")
		defer func() {
			node.Close()
			peer.Step(log, "node closed")
			node.Repo.Close()
			peer.Step(log, "repo closed")
		}()
		g = node
	}
	res, err := g.Get(ctx, opts.Root, gopts)
	endMeter()
	if err != nil {
		return err
	}
	if res.From == nil {
		res.From = map[string]uint64{} // "from": {}, never null
	}
	if p.json {
		p.event(getSummaryEvent{Type: "summary", CID: res.CID, Path: res.Path, Bytes: res.Bytes, Seconds: res.Seconds,
			From: res.From, Wasted: res.Wasted, WastedFrom: res.WastedFrom, RelayedFrom: res.RelayedFrom})
	} else if !p.quiet {
		fmt.Fprintln(p.out, summaryLine(res))
		if opts.Verbose {
			fmt.Fprint(p.out, peerTable(res))
		}
	}
	if opts.Seed && node != nil {
		if !p.json && !p.quiet {
			fmt.Fprintln(p.errw, "seeding; press Ctrl-C to stop")
		}
		<-ctx.Done()
	}
	return nil
}

// summaryLine is get's result line: `got <CID> <path> (<size> in <time>,
// <average rate> from <n> peers)`, n counting the peers that sent data.
// Scripts parse it: extend it only at its end.
func summaryLine(res peer.GetResult) string {
	rate := 0.0
	if res.Seconds > 0 {
		rate = float64(res.Bytes) / res.Seconds
	}
	return fmt.Sprintf("got %s %s (%s in %.1fs, %s/s from %s)", res.CID, displayName(res.Path), humanBytes(res.Bytes), res.Seconds, humanBytes(uint64(rate)), plural(len(res.From), "peer"))
}

// peerTable is get -v's table of the peers that sent data (or wasted
// some), most bytes first, with the bytes that came through a relay:
//
//	peer                                                  bytes  share  wasted     relayed
//	12D3KooWRm...                                       3.0 MiB  75.0%     0 B     1.0 MiB
func peerTable(res peer.GetResult) string {
	type row struct {
		id                     string
		bytes, wasted, relayed uint64
	}
	var rows []row
	var total uint64
	for id, b := range res.From {
		rows = append(rows, row{id, b, res.WastedFrom[id], res.RelayedFrom[id]})
		total += b
	}
	for id, w := range res.WastedFrom {
		if _, ok := res.From[id]; !ok {
			rows = append(rows, row{id, 0, w, 0})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(cmp.Compare(b.bytes, a.bytes), strings.Compare(a.id, b.id)) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-52s  %10s  %6s  %10s  %10s\n", "peer", "bytes", "share", "wasted", "relayed")
	for _, r := range rows {
		share := 0.0
		if total > 0 {
			share = 100 * float64(r.bytes) / float64(total)
		}
		fmt.Fprintf(&sb, "%-52s  %10s  %5.1f%%  %10s  %10s\n", r.id, humanBytes(r.bytes), share, humanBytes(r.wasted), humanBytes(r.relayed))
	}
	return sb.String()
}

// plural is "1 peer", "3 peers".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
