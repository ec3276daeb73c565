package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ipfs/go-cid"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

// repoBackend is what add, ls and rm need: either the running seed node
// (through its local API) or the repo opened directly.
type repoBackend interface {
	Add(ctx context.Context, path string, opts peer.AddOptions) (peer.AddResult, error)
	List(ctx context.Context) ([]peer.RootInfo, error)
	Remove(ctx context.Context, root cid.Cid) error
}

// openBackend returns the seed's API client if a seed runs on the repo,
// else the repo itself; close releases it.
func openBackend(dir string) (b repoBackend, close func(), err error) {
	if cl, err := peer.Dial(dir); err == nil {
		return cl, func() {}, nil
	}
	r, err := openRepo(dir)
	if err != nil {
		return nil, nil, err
	}
	return r, func() { r.Close() }, nil
}

func openRepo(dir string) (*peer.Repo, error) {
	r, err := peer.Open(dir)
	if errors.Is(err, peer.ErrRepoLocked) {
		return nil, fmt.Errorf("%w (is a p2pshare get or seed running on %s? stop it or use another --repo)", err, dir)
	}
	return r, err
}

// parseCID parses a CID argument; a malformed one is a usage error.
func parseCID(c *cli.Context) (cid.Cid, error) {
	if c.NArg() != 1 {
		return cid.Undef, usagef("%s takes exactly one CID (got %d arguments)", c.Command.Name, c.NArg())
	}
	s := c.Args().First()
	id, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, usagef("malformed CID %q: %v", s, err)
	}
	return id, nil
}

// bootstrapPeers collects --bootstrap flags and P2PSHARE_BOOTSTRAP.
func bootstrapPeers(c *cli.Context) ([]libp2ppeer.AddrInfo, error) {
	addrs := c.StringSlice("bootstrap")
	if env := os.Getenv("P2PSHARE_BOOTSTRAP"); env != "" {
		for _, a := range strings.Split(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	out, err := peer.ParseBootstrap(addrs)
	if err != nil {
		return nil, usageError{err}
	}
	return out, nil
}

// listenAddrs parses --listen flags.
func listenAddrs(c *cli.Context) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, a := range c.StringSlice("listen") {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, usagef("bad --listen multiaddr %q: %v", a, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// nodeFlags parses the flags that configure a node: --bootstrap (and
// P2PSHARE_BOOTSTRAP), --listen, --max-upload and --max-download.
func nodeFlags(c *cli.Context) (peer.NodeOptions, error) {
	var opts peer.NodeOptions
	var err error
	if opts.Bootstrap, err = bootstrapPeers(c); err != nil {
		return opts, err
	}
	if opts.Listen, err = listenAddrs(c); err != nil {
		return opts, err
	}
	if opts.MaxUpload, err = rateFlag(c, "max-upload"); err != nil {
		return opts, err
	}
	opts.MaxDownload, err = rateFlag(c, "max-download")
	return opts, err
}

// rateFlag parses a RATE flag.
func rateFlag(c *cli.Context, name string) (int64, error) {
	r, err := parseRate(c.String(name))
	if err != nil {
		return 0, usagef("--%s: %v", name, err)
	}
	return r, nil
}

var (
	bootstrapFlag = &cli.StringSliceFlag{Name: "bootstrap", Usage: "peer to join the network through (multiaddr with /p2p/ID; repeatable)"}
	listenFlag    = func(def ...string) *cli.StringSliceFlag {
		return &cli.StringSliceFlag{Name: "listen", Usage: "multiaddr to listen on (repeatable)", Value: cli.NewStringSlice(def...)}
	}
	maxUploadFlag   = &cli.StringFlag{Name: "max-upload", Usage: "upload rate limit, e.g. 10MB, 80Mbit, 512KiB (per second)"}
	maxDownloadFlag = &cli.StringFlag{Name: "max-download", Usage: "download rate limit, e.g. 10MB, 80Mbit, 512KiB (per second)"}
)
