package peer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pshare/p2pshare/dht"
	"github.com/p2pshare/p2pshare/transfer"
)

// NodeOptions configure a running node.
type NodeOptions struct {
	// Listen is where the host listens; empty means the repo config's, else
	// DefaultListen.
	Listen []ma.Multiaddr
	// Bootstrap lists the peers to join the DHT through; it is added to the
	// repo config's.
	Bootstrap []libp2ppeer.AddrInfo
	// MaxUpload and MaxDownload cap transfer rates in bytes per second (0:
	// no cap).
	MaxUpload, MaxDownload int64
	// SwarmKey, when set, makes the node a member of the private swarm of
	// that pre-shared key (see LoadSwarmKey): it talks only to peers that
	// hold the same key, over TCP only. Nil means the repo config's
	// swarm_key file, if any.
	SwarmKey pnet.PSK
	// MDNS, when set, makes the node find p2pshare peers on the local
	// network by multicast DNS (service MDNSService), connect to them and
	// so share a DHT with them without any bootstrap peer. Off by default
	// (tests stay on loopback); the CLI turns it on unless --no-mdns. The
	// repo config's no_mdns turns it off.
	MDNS bool
	// Bitswap, when set, serves the repo's blocks to IPFS nodes (Kubo and
	// others) over the /ipfs/bitswap protocols too (see bitswap.go). Off
	// by default; the CLI's seed turns it on unless --no-bitswap.
	Bitswap bool
	// Relay, when set, offers a circuit relay v2 service (limits:
	// RelayResources) to peers behind NAT while AutoNAT finds this node
	// publicly reachable. Off by default; the CLI's seed turns it on
	// unless --no-relay.
	Relay bool
	// AutoNATService, when set, offers AutoNAT's dial-back checks (v1 and
	// v2) to peers that ask whether they are reachable, and has AutoNAT v2
	// check each of this node's own addresses: what a long-lived node
	// does. Off by default; the CLI's seed and share turn it on, and get
	// does with --seed. A node that runs for one download leaves it off:
	// each service is a second libp2p swarm built at start (4-5 ms of a
	// fresh get of 1 MiB, the most of any part of the host), and a node
	// about to exit answers for others poorly. AutoNAT v1's client runs
	// either way: it tells the node whether it is reachable (status, and
	// AutoRelay's reservations behind a NAT).
	AutoNATService bool
	// Log receives service events; nil discards them.
	Log *slog.Logger
}

// Node is a running p2pshare node: a libp2p host, the DHT, the transfer
// service and the repo behind them. Every method is safe for concurrent use.
type Node struct {
	Repo     *Repo
	Host     host.Host
	DHT      *dht.DHT
	Transfer *transfer.Service

	bitswap *bitswapServer // nil when off
	log     *slog.Logger
	bw      *metrics.BandwidthCounter
	metrics *nodeMetrics
	live    liveDownloads
	// life ends when Close is called; background work derives from it.
	life      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	mdns      mdns.Service               // nil when off
	reach     atomic.Int32               // network.Reachability, as AutoNAT last reported it
	lanMu     sync.Mutex                 // guards lan
	lan       map[libp2ppeer.ID]struct{} // the peers mDNS found
	mu        sync.Mutex                 // guards closing
	closing   bool                       // no new goroutine may join wg
	closeOnce sync.Once
	closeErr  error
}

// Start brings a node up on repo: it listens, joins the DHT through the
// bootstrap peers and starts serving the repo's content. It does not
// provide anything yet: see ProvideAll.
func Start(ctx context.Context, repo *Repo, opts NodeOptions) (*Node, error) {
	nh, err := newNodeHost(repo, opts)
	if err != nil {
		return nil, err
	}
	return nh.start(ctx, repo, opts)
}

// OpenAndStart opens the repo in dir and starts a node on it, as Open then
// Start do, but sooner: the host is built and the bootstrap peers dialled
// while the datastore opens. Close the node, then its Repo.
func OpenAndStart(ctx context.Context, dir string, opts NodeOptions) (*Node, error) {
	repo, err := openFiles(dir)
	if err != nil {
		return nil, err
	}
	opened := make(chan error, 1)
	go func() { opened <- repo.openDatastore() }()
	nh, err := newNodeHost(repo, opts)
	if err == nil {
		nh.dialBootstrap(ctx)
	}
	if oerr := <-opened; oerr != nil {
		if err == nil {
			nh.h.Close()
		}
		return nil, oerr
	}
	if err != nil {
		repo.Close()
		return nil, err
	}
	n, err := nh.start(ctx, repo, opts)
	if err != nil {
		repo.Close()
		return nil, err
	}
	return n, nil
}

// nodeHost is a node's host and what it was built from, before the node
// starts on it (it needs no datastore).
type nodeHost struct {
	log  *slog.Logger
	h    host.Host
	boot []libp2ppeer.AddrInfo
	psk  pnet.PSK
	bw   *metrics.BandwidthCounter
	nm   *nodeMetrics
}

// newNodeHost builds the host of a node on repo: its identity, listen
// addresses, bootstrap peers and swarm key from opts and the repo's config.
func newNodeHost(repo *Repo, opts NodeOptions) (*nodeHost, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	listen := opts.Listen
	if len(listen) == 0 {
		addrs := repo.Config.Listen
		if len(addrs) == 0 {
			addrs = DefaultListen
		}
		for _, a := range addrs {
			m, err := ma.NewMultiaddr(a)
			if err != nil {
				return nil, fmt.Errorf("config listen address %q: %w", a, err)
			}
			listen = append(listen, m)
		}
	}
	boot, err := ParseBootstrap(repo.Config.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("config bootstrap: %w", err)
	}
	boot = append(boot, opts.Bootstrap...)
	psk := opts.SwarmKey
	if psk == nil && repo.Config.SwarmKey != "" {
		if psk, err = LoadSwarmKey(repo.Config.SwarmKeyFile(repo.Dir)); err != nil {
			return nil, fmt.Errorf("config swarm_key: %w", err)
		}
	}
	if len(psk) > 0 {
		// go-libp2p has no pre-shared keys for QUIC: a private node
		// listens on its TCP addresses alone.
		tcp, other := PrivateListen(listen)
		for _, a := range other {
			log.Warn("private swarm: not listening on a non-TCP address", "addr", a)
		}
		if len(tcp) == 0 {
			return nil, ErrNoTCPListen
		}
		listen = tcp
	}

	bw := metrics.NewBandwidthCounter()
	nm := newNodeMetrics()
	Step(log, "metrics ready")
	h, err := newHost(repo.Key, listen, psk, hostServices{relay: opts.Relay && !repo.Config.NoRelay, autoNAT: opts.AutoNATService}, bw, nm.reg)
	if err != nil {
		return nil, err
	}
	Step(log, "host started")
	return &nodeHost{log: log, h: h, boot: boot, psk: psk, bw: bw, nm: nm}, nil
}

// dialBootstrap starts dialling the bootstrap peers in the background, so
// that the DHT's bootstrap finds them connected; failures are left for it
// to report.
func (nh *nodeHost) dialBootstrap(ctx context.Context) {
	for _, ai := range nh.boot {
		go func() {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_ = nh.h.Connect(dctx, ai)
		}()
	}
}

// start starts the node on its host: the DHT (joined through the
// bootstrap peers), the transfer service and the rest. It closes the
// host if it fails.
func (nh *nodeHost) start(ctx context.Context, repo *Repo, opts NodeOptions) (*Node, error) {
	log, h, boot, psk, bw, nm := nh.log, nh.h, nh.boot, nh.psk, nh.bw, nh.nm
	d, err := dht.New(h, dht.Config{
		Bootstrap: boot,
		Datastore: namespace.Wrap(repo.ds, ds.NewKey("/dht")),
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("starting DHT: %w", err)
	}
	Step(log, "dht started")
	var topts []transfer.Option
	if opts.MaxUpload > 0 {
		topts = append(topts, transfer.WithMaxUpload(opts.MaxUpload))
	}
	if opts.MaxDownload > 0 {
		topts = append(topts, transfer.WithMaxDownload(opts.MaxDownload))
	}
	topts = append(topts, transfer.WithObserver(observer{nm, log}))
	svc := transfer.New(h, repo.store(), repo.store(), topts...)
	life, cancel := context.WithCancel(context.Background())
	n := &Node{Repo: repo, Host: h, DHT: d, Transfer: svc, log: log, bw: bw, metrics: nm, life: life, cancel: cancel}
	nm.register(n)
	h.Network().Notify(connLog(log))
	if opts.Bitswap && !repo.Config.NoBitswap {
		n.bitswap = startBitswap(h, repo.Blockstore(), svc)
	}
	if len(boot) > 0 {
		bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.Bootstrap(bctx)
		bcancel()
		if err != nil {
			n.Close()
			if he := handshakeError(err, len(psk) > 0); he != nil {
				return nil, he
			}
			return nil, fmt.Errorf("joining the network: %w", err)
		}
		Step(log, "bootstrapped")
	}
	if err := n.watchReachability(); err != nil {
		n.Close()
		return nil, err
	}
	if opts.MDNS && !repo.Config.NoMDNS {
		n.startMDNS()
	}
	return n, nil
}

// ErrNoBootstrap is wrapped by Start's error when bootstrap peers were
// given and none of them could be reached.
var ErrNoBootstrap = dht.ErrNoBootstrap

// ParseBootstrap parses multiaddrs that end in /p2p/<peer ID>.
func ParseBootstrap(addrs []string) ([]libp2ppeer.AddrInfo, error) {
	var out []libp2ppeer.AddrInfo
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w", a, err)
		}
		ai, err := libp2ppeer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q needs /p2p/<peer ID>: %w", a, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// Close stops the node: the transfer service, the DHT and the host. It does
// not close the repo. Closing twice is harmless.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closing = true
		n.mu.Unlock()
		if n.mdns != nil {
			n.mdns.Close()
		}
		n.cancel()
		n.wg.Wait()
		if n.bitswap != nil {
			n.bitswap.Close()
		}
		n.Transfer.Close()
		n.DHT.Close()
		n.closeErr = n.Host.Close()
	})
	return n.closeErr
}

// Addrs returns the node's listen addresses with /p2p/<peer ID> appended.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.Host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.Host.ID().String())
	}
	return out
}

// provide announces c in the DHT in the background; failures are logged.
func (n *Node) provide(c cid.Cid) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.life, 2*time.Minute)
		defer cancel()
		if err := n.DHT.Provide(ctx, c); err != nil {
			if n.life.Err() != nil {
				// The node closes (a get that is done exits): the
				// provide was cut short, it did not fail.
				n.log.Debug("providing stopped: the node closes", "cid", c)
				return
			}
			n.metrics.provides.WithLabelValues("failed").Inc()
			n.log.Warn("providing", "cid", c, "err", err)
			return
		}
		n.metrics.provides.WithLabelValues("ok").Inc()
	}()
}

// ProvideAll announces every root in the repo (complete or partial).
func (n *Node) ProvideAll(ctx context.Context) error {
	roots, err := n.Repo.index.roots(ctx)
	if err != nil {
		return err
	}
	for _, r := range roots {
		n.provide(r.CID)
	}
	return nil
}

// Add adds path to the repo and provides the new root.
func (n *Node) Add(ctx context.Context, path string, opts AddOptions) (AddResult, error) {
	res, err := n.Repo.Add(ctx, path, opts)
	if err == nil && !opts.OnlyHash {
		n.Repo.store().forget(res.CID)
		n.provide(res.CID)
	}
	return res, err
}

// Remove stops sharing root and stops reproviding it.
func (n *Node) Remove(ctx context.Context, root cid.Cid) error {
	if err := n.Repo.Remove(ctx, root); err != nil {
		return err
	}
	n.Repo.store().forget(root)
	n.DHT.Unprovide(root)
	return nil
}

// Status describes a running node.
type Status struct {
	PeerID       string   `json:"peer_id"`
	Addrs        []string `json:"addrs"`
	Peers        int      `json:"peers"`
	RoutingTable int      `json:"routing_table"`
	Roots        int      `json:"roots"`
	BytesUp      int64    `json:"bytes_up"`
	BytesDown    int64    `json:"bytes_down"`
	// NAT is the node's reachability as AutoNAT last judged it from what
	// other peers could dial: "public", "private" (behind a NAT or
	// firewall) or "unknown" (not judged yet: too few peers have tried).
	NAT string `json:"nat"`
	// Relayed is true when the node has circuit relay addresses: peers
	// that cannot dial it directly reach it through a relay.
	Relayed bool `json:"relayed"`
	// MDNS is true when the node looks for peers on the LAN (mDNS).
	MDNS bool `json:"mdns"`
	// LANPeers counts the connected peers that mDNS found on the LAN.
	LANPeers int `json:"lan_peers"`
}

// Status reports the node's identity, connectivity and traffic.
func (n *Node) Status(ctx context.Context) (Status, error) {
	roots, err := n.Repo.index.roots(ctx)
	if err != nil {
		return Status{}, err
	}
	up, down := n.Traffic()
	st := Status{
		PeerID:       n.Host.ID().String(),
		Addrs:        n.Addrs(),
		Peers:        len(n.Host.Network().Peers()),
		RoutingTable: n.DHT.RoutingTableSize(),
		Roots:        len(roots),
		BytesUp:      up,
		BytesDown:    down,
		NAT:          reachabilityName(network.Reachability(n.reach.Load())),
		MDNS:         n.mdns != nil,
		LANPeers:     n.lanPeers(),
	}
	for _, a := range n.Host.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			st.Relayed = true
		}
	}
	return st, nil
}

// reachabilityName is how Status names a libp2p reachability.
func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	default:
		return "unknown"
	}
}

// watchReachability follows AutoNAT's verdicts on the host's event bus
// (EvtLocalReachabilityChanged; the bus hands a new subscriber the last
// one) until the node closes.
func (n *Node) watchReachability() error {
	sub, err := n.Host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("subscribing to reachability events: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-n.life.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				if e, ok := ev.(event.EvtLocalReachabilityChanged); ok {
					n.reach.Store(int32(e.Reachability))
				}
			}
		}
	}()
	return nil
}

// foundOnLAN records a peer that mDNS found.
func (n *Node) foundOnLAN(id libp2ppeer.ID) {
	n.lanMu.Lock()
	defer n.lanMu.Unlock()
	if n.lan == nil {
		n.lan = map[libp2ppeer.ID]struct{}{}
	}
	n.lan[id] = struct{}{}
}

// lanPeers counts the peers mDNS found that are connected now.
func (n *Node) lanPeers() int {
	n.lanMu.Lock()
	defer n.lanMu.Unlock()
	k := 0
	for id := range n.lan {
		if n.Host.Network().Connectedness(id) == network.Connected {
			k++
		}
	}
	return k
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	PeerID string `json:"peer_id"`
	// Addr is the remote address of the connection to the peer (the
	// first, when there are several).
	Addr string `json:"addr"`
	// Direction is "inbound" (the peer dialed us) or "outbound".
	Direction string `json:"direction"`
	// LatencyMS is the round-trip time in milliseconds, the peerstore's
	// moving average after a fresh ping; 0 when unknown (the peer did
	// not answer the ping in time).
	LatencyMS float64 `json:"latency_ms"`
	// BytesUp and BytesDown count what the node sent to and received
	// from the peer over streams, since the node started.
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
	// RateUp and RateDown are the current rates in bytes per second
	// (libp2p's BandwidthCounter: a moving average over a few seconds).
	RateUp   float64 `json:"rate_up"`
	RateDown float64 `json:"rate_down"`
}

// peersPingTimeout bounds the ping Peers sends each peer.
const peersPingTimeout = time.Second

// Peers lists the connected peers, sorted by peer ID. It pings each (all
// at once, for peersPingTimeout at most) to measure latency, so it takes
// up to that long; cancelling ctx ends the pings early.
func (n *Node) Peers(ctx context.Context) []PeerInfo {
	h := n.Host
	ids := h.Network().Peers()
	slices.Sort(ids)
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, peersPingTimeout)
			defer cancel()
			select { // ping.Ping records the RTT in the peerstore
			case <-ping.Ping(pctx, h, id):
			case <-pctx.Done():
			}
		}()
	}
	wg.Wait()
	out := make([]PeerInfo, 0, len(ids))
	for _, id := range ids {
		conns := h.Network().ConnsToPeer(id)
		if len(conns) == 0 {
			continue // gone meanwhile
		}
		c := conns[0]
		bw := n.bw.GetBandwidthForPeer(id)
		dir := "outbound"
		if c.Stat().Direction == network.DirInbound {
			dir = "inbound"
		}
		out = append(out, PeerInfo{
			PeerID:    id.String(),
			Addr:      c.RemoteMultiaddr().String(),
			Direction: dir,
			LatencyMS: float64(h.Peerstore().LatencyEWMA(id).Microseconds()) / 1000,
			BytesUp:   bw.TotalOut,
			BytesDown: bw.TotalIn,
			RateUp:    bw.RateOut,
			RateDown:  bw.RateIn,
		})
	}
	return out
}

// connLog logs, at info level, each connection a peer opens or closes.
func connLog(log *slog.Logger) network.Notifiee {
	attrs := func(c network.Conn) []any {
		return []any{"peer", c.RemotePeer(), "addr", c.RemoteMultiaddr(), "direction", c.Stat().Direction}
	}
	return &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { log.Info("peer connected", attrs(c)...) },
		DisconnectedF: func(_ network.Network, c network.Conn) { log.Info("peer disconnected", attrs(c)...) },
	}
}
