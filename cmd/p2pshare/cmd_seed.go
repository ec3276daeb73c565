package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newSeedCommand() *cli.Command {
	return &cli.Command{
		Name:      "seed",
		Usage:     "run the long-lived node: serve and provide everything added, accept add/get/rm over the local API",
		UsageText: "p2pshare seed\np2pshare seed --listen /ip4/0.0.0.0/tcp/4001 --bootstrap /ip4/192.0.2.1/tcp/4001/p2p/12D3Koo... --max-upload 50Mbit",
		Flags: []cli.Flag{
			listenFlag(),
			bootstrapFlag,
			swarmKeyFlag,
			noMDNSFlag, logLevelFlag,
			maxUploadFlag, maxDownloadFlag,
			&cli.StringFlag{Name: "gateway", Usage: "serve an IPFS HTTP gateway (/ipfs/<CID>, ?format=raw|car) of the repo's blocks, fetching others from the swarm on demand, on this host:port, e.g. 127.0.0.1:8080 (a bare :PORT listens on loopback); off by default"},
			noBitswapFlag, noRelayFlag,
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics (libp2p's and p2pshare's) on this host:port, e.g. 127.0.0.1:9090 (a bare :PORT listens on loopback); off by default"},
		},
		Action: func(c *cli.Context) error {
			opts, err := nodeFlags(c)
			if err != nil {
				return err
			}
			opts.Bitswap = !c.Bool("no-bitswap")
			opts.Relay = !c.Bool("no-relay")
			return runSeed(c.Context, c.String("repo"), opts, c.String("metrics"), c.String("gateway"), newPrinter(c))
		},
	}
}

func runSeed(ctx context.Context, repo string, opts peer.NodeOptions, metrics, gw string, p *printer) error {
	return serveNode(ctx, repo, opts, func(n *peer.Node) error {
		for _, a := range n.Addrs() {
			p.result(listeningEvent{Type: "listening", Addr: a}, "listening "+a)
		}
		if metrics != "" {
			if err := serveMetrics(ctx, n, metrics); err != nil {
				return usagef("--metrics %s: %v", metrics, err)
			}
		}
		if gw != "" {
			if err := serveGateway(ctx, n, gw, p); err != nil {
				return usagef("--gateway %s: %v", gw, err)
			}
		}
		return nil
	})
}

// serveNode runs a node of this process on repo, as seed and share do: it
// starts the node, provides everything the repo holds, calls up (if set),
// then serves the local API until ctx ends, and shuts down. An error of
// up ends it at once. The end of ctx (SIGINT, SIGTERM) is a clean stop:
// nil.
func serveNode(ctx context.Context, repo string, opts peer.NodeOptions, up func(*peer.Node) error) error {
	if _, err := peer.Dial(repo); err == nil {
		return fmt.Errorf("a seed node already runs on %s", repo)
	}
	opts.AutoNATService = true // a long-lived node answers others' checks
	n, err := openAndStartNode(ctx, repo, opts)
	if err != nil {
		return err
	}
	defer n.Repo.Close()
	defer n.Close()
	if err := n.ProvideAll(ctx); err != nil {
		return err
	}
	if up != nil {
		if err := up(n); err != nil {
			return err
		}
	}
	err = n.ServeAPI(ctx)
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// serveMetrics serves the node's Prometheus metrics (libp2p's, Go's and
// p2pshare's; see peer.Node.MetricsHandler) on addr, at /metrics and every
// other path. An address without a host (":9090", "9090") listens on
// loopback only: metrics name peers and traffic, so exposing them beyond
// this machine takes an explicit host (0.0.0.0:9090).
func serveMetrics(ctx context.Context, n *peer.Node, addr string) error {
	_, err := serveHTTP(ctx, addr, n.MetricsHandler())
	return err
}

// serveHTTP serves h on addr (loopback unless addr names a host) until ctx
// ends, and returns the bound address once it listens.
func serveHTTP(ctx context.Context, addr string, h http.Handler) (net.Addr, error) {
	l, err := net.Listen("tcp", loopbackDefault(addr))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	go srv.Serve(l)
	context.AfterFunc(ctx, func() { srv.Close() })
	return l.Addr(), nil
}

// loopbackDefault gives an address without a host the loopback host, so
// a server is reachable from other machines only when the user names a
// host.
func loopbackDefault(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return net.JoinHostPort("127.0.0.1", addr) // a bare port
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
