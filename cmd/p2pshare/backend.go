package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ipfs/go-cid"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/chunker"
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
	return r, repoError(dir, err)
}

// repoError adds a hint to an error opening the repo in dir.
func repoError(dir string, err error) error {
	if errors.Is(err, peer.ErrRepoLocked) {
		return fmt.Errorf("%w (is a p2pshare get or seed running on %s? stop it or use another --repo)", err, dir)
	}
	return err
}

// parseCID parses a CID argument; a malformed one is a usage error.
func parseCID(c *cli.Context) (cid.Cid, error) {
	if c.NArg() != 1 {
		return cid.Undef, usagef("%s takes exactly one CID (got %d arguments)", c.Command.Name, c.NArg())
	}
	s := c.Args().First()
	id, err := cid.Decode(s)
	if err == nil {
		err = chunker.CheckCID(id)
	}
	if err != nil {
		return cid.Undef, usagef("malformed CID %q: %v", s, err)
	}
	return id, nil
}

// parseTarget parses get's argument: a CID, or a ticket (the root, peers
// that hold it and maybe its name), optionally followed by a path inside
// it, in the IPFS path syntax (CID/sub/dir/file, also
// /ipfs/CID/sub/dir/file). A CID comes back as a ticket of the root alone.
// A malformed CID or ticket, or a path element that is not a safe name
// ("..", an empty element), is a usage error.
func parseTarget(c *cli.Context) (peer.Ticket, string, error) {
	if c.NArg() != 1 {
		return peer.Ticket{}, "", usagef("%s takes exactly one CID or ticket (got %d arguments)", c.Command.Name, c.NArg())
	}
	arg := c.Args().First()
	s, path, _ := strings.Cut(strings.TrimPrefix(arg, "/ipfs/"), "/")
	if _, err := chunker.SplitPath(path); err != nil {
		return peer.Ticket{}, "", usagef("bad path in %q: %v", arg, err)
	}
	if !peer.IsTicket(s) {
		root, err := cid.Decode(s)
		if err == nil {
			err = chunker.CheckCID(root)
		}
		if err != nil {
			return peer.Ticket{}, "", usagef("malformed CID %q: %v", s, err)
		}
		return peer.Ticket{Root: root}, path, nil
	}
	t, err := peer.ParseTicket(s)
	if err != nil {
		return peer.Ticket{}, "", usageError{err}
	}
	return t, path, nil
}

// bootstrapPeers collects --bootstrap flags and P2PSHARE_BOOTSTRAP.
func bootstrapPeers(c *cli.Context) ([]libp2ppeer.AddrInfo, error) {
	out, err := peer.ParseBootstrap(append(c.StringSlice("bootstrap"), envBootstrap()...))
	if err != nil {
		return nil, usageError{err}
	}
	return out, nil
}

// envBootstrap is P2PSHARE_BOOTSTRAP's comma-separated addresses.
func envBootstrap() []string {
	var addrs []string
	for _, a := range strings.Split(os.Getenv("P2PSHARE_BOOTSTRAP"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
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
// P2PSHARE_BOOTSTRAP), --listen, --swarm-key (and P2PSHARE_SWARM_KEY, and
// the config's swarm_key), --max-upload, --max-download and --no-mdns
// (mDNS is on unless it or the config's no_mdns turns it off).
func nodeFlags(c *cli.Context) (peer.NodeOptions, error) {
	opts := peer.NodeOptions{MDNS: !c.Bool("no-mdns")}
	var err error
	if opts.Bootstrap, err = bootstrapPeers(c); err != nil {
		return opts, err
	}
	if opts.Listen, err = listenAddrs(c); err != nil {
		return opts, err
	}
	if opts.SwarmKey, err = swarmKey(c); err != nil {
		return opts, err
	}
	if opts.Log, err = logger(c); err != nil {
		return opts, err
	}
	if opts.SwarmKey != nil {
		// go-libp2p has no pre-shared keys for QUIC: the default
		// addresses lose theirs, a QUIC address asked for is refused.
		tcp, other := peer.PrivateListen(opts.Listen)
		if len(other) > 0 && c.IsSet("listen") {
			return opts, usagef("--listen %s: a private swarm (--swarm-key) runs over TCP only (go-libp2p has no pre-shared keys for QUIC); listen on a /tcp/ address", other[0])
		}
		opts.Listen = tcp
	}
	if opts.MaxUpload, err = rateFlag(c, "max-upload"); err != nil {
		return opts, err
	}
	opts.MaxDownload, err = rateFlag(c, "max-download")
	return opts, err
}

// swarmKey loads the swarm key named by --swarm-key, else
// P2PSHARE_SWARM_KEY, else the repo config's swarm_key; nil if none is.
// A missing or malformed key file is a usage error.
func swarmKey(c *cli.Context) (pnet.PSK, error) {
	path := c.String("swarm-key")
	if path == "" {
		cfg, err := peer.LoadConfig(c.String("repo"))
		if err != nil {
			return nil, err
		}
		if path = cfg.SwarmKeyFile(c.String("repo")); path == "" {
			return nil, nil
		}
	}
	psk, err := peer.LoadSwarmKey(path)
	if err != nil {
		return nil, usageError{err}
	}
	return psk, nil
}

// openAndStartNode opens the repo in dir and starts a node of this
// process on it, the datastore opening while the host starts
// (peer.OpenAndStart). Close the node, then its Repo. A locked repo, or a
// failed handshake with the bootstrap peers, gets a hint: another process
// uses the repo; a swarm key is missing or differs.
func openAndStartNode(ctx context.Context, dir string, opts peer.NodeOptions) (*peer.Node, error) {
	n, err := peer.OpenAndStart(ctx, dir, opts)
	return n, nodeError(repoError(dir, err))
}

// nodeError adds a hint to an error starting a node.
func nodeError(err error) error {
	var he *peer.HandshakeError
	switch {
	case errors.As(err, &he) && he.Private:
		return fmt.Errorf("%w (does that peer use the same swarm key? check --swarm-key)", err)
	case errors.As(err, &he):
		return fmt.Errorf("%w (is this a private swarm? pass --swarm-key)", err)
	}
	return err
}

// logger is the node's log on stderr, at the level of --log-level, else
// P2PSHARE_LOG_LEVEL, else the repo config's log_level, else warn: quiet
// unless something goes wrong.
func logger(c *cli.Context) (*slog.Logger, error) {
	name := c.String("log-level")
	if name == "" {
		cfg, err := peer.LoadConfig(c.String("repo"))
		if err != nil {
			return nil, err
		}
		name = cfg.LogLevel
	}
	var level slog.Level
	if name == "" {
		level = slog.LevelWarn
	} else if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", name)
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})), nil
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
	swarmKeyFlag = &cli.StringFlag{Name: "swarm-key", Usage: "join the private swarm of this key file (/key/swarm/psk/1.0.0/, as Kubo's swarm.key; make one with p2pshare swarm-key); TCP only",
		EnvVars: []string{"P2PSHARE_SWARM_KEY"}, TakesFile: true}
	noBitswapFlag = &cli.BoolFlag{Name: "no-bitswap", Usage: "do not serve blocks to IPFS nodes (Kubo) over Bitswap; also the config's \"no_bitswap\": true", EnvVars: []string{"P2PSHARE_NO_BITSWAP"}}
	noRelayFlag   = &cli.BoolFlag{Name: "no-relay", Usage: "do not relay for peers behind NAT (a seed AutoNAT finds publicly reachable offers a limited circuit relay by default); also the config's \"no_relay\": true", EnvVars: []string{"P2PSHARE_NO_RELAY"}}
	noMDNSFlag    = &cli.BoolFlag{Name: "no-mdns", Usage: "do not look for peers on the local network (mDNS); also the config's \"no_mdns\": true",
		EnvVars: []string{"P2PSHARE_NO_MDNS"}}
	logLevelFlag = &cli.StringFlag{Name: "log-level", Usage: "log to stderr at this level: debug, info (peers connecting, downloads), warn (the default) or error; also the config's \"log_level\"",
		EnvVars: []string{"P2PSHARE_LOG_LEVEL"}}
	maxUploadFlag   = &cli.StringFlag{Name: "max-upload", Usage: "upload rate limit, e.g. 10MB, 80Mbit, 512KiB (per second)"}
	maxDownloadFlag = &cli.StringFlag{Name: "max-download", Usage: "download rate limit, e.g. 10MB, 80Mbit, 512KiB (per second)"}
)
