// Package dht is p2pshare's content routing: a go-libp2p-kad-dht in server
// mode under the protocol prefix /p2pshare, so p2pshare nodes form a DHT of
// their own. It bootstraps only from the peers it is given (never the public
// IPFS bootstrappers), provides and reprovides CIDs, and finds providers.
//
// It knows nothing of files, chunks or transfers: only CIDs and peers.
//
// Reproviding is a small loop of our own rather than kad-dht's sweeping
// provider: a node here provides roots only (a handful to thousands of
// CIDs, not every block), so re-announcing each one every
// ReprovideInterval is cheap, and the loop works the same on a two-node
// network on loopback as on a large one, where the sweeping provider's
// keyspace regions assume a populated network.
package dht

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolPrefix is the DHT protocol prefix: /p2pshare/kad/1.0.0.
const ProtocolPrefix = "/p2pshare"

// DefaultReprovideInterval is how often provided CIDs are announced again:
// well within kad-dht's 48 h provider record validity, as Kubo's 22 h.
const DefaultReprovideInterval = 22 * time.Hour

// ErrNoBootstrap is returned by Bootstrap when none of the bootstrap peers
// could be reached.
var ErrNoBootstrap = errors.New("no bootstrap peer reachable")

// Config configures New.
type Config struct {
	// Bootstrap lists the peers to join through. Empty is fine for the
	// first node of a network.
	Bootstrap []peer.AddrInfo
	// Datastore keeps provider records and routing state; nil means an
	// in-memory store.
	Datastore datastore.Batching
	// ReprovideInterval is how often provided CIDs are announced again; 0
	// means DefaultReprovideInterval.
	ReprovideInterval time.Duration
	// DisableAutoRefresh turns off the routing table's periodic refresh
	// (tests).
	DisableAutoRefresh bool
}

// DHT is a running DHT node. Its methods are safe for concurrent use.
type DHT struct {
	h    host.Host
	kad  *kad.IpfsDHT
	boot []peer.AddrInfo

	mu       sync.Mutex
	provided map[cid.Cid]bool
	closed   bool // no goroutine may join wg

	life   context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New starts a DHT node on h in server mode.
func New(h host.Host, cfg Config) (*DHT, error) {
	opts := []kad.Option{
		kad.Mode(kad.ModeServer),
		kad.ProtocolPrefix(ProtocolPrefix),
		kad.BootstrapPeers(cfg.Bootstrap...),
		// Every address is fine: p2pshare runs on LANs, loopback and
		// private test networks as well as the internet.
		kad.AddressFilter(nil),
		kad.QueryFilter(func(any, peer.AddrInfo) bool { return true }),
		kad.RoutingTableFilter(func(any, peer.ID) bool { return true }),
	}
	if cfg.Datastore != nil {
		opts = append(opts, kad.Datastore(cfg.Datastore))
	}
	if cfg.DisableAutoRefresh {
		opts = append(opts, kad.DisableAutoRefresh())
	}
	k, err := kad.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("starting kad-dht: %w", err)
	}
	interval := cfg.ReprovideInterval
	if interval <= 0 {
		interval = DefaultReprovideInterval
	}
	life, cancel := context.WithCancel(context.Background())
	d := &DHT{h: h, kad: k, boot: cfg.Bootstrap, provided: map[cid.Cid]bool{}, life: life, cancel: cancel}
	d.wg.Add(1)
	go d.reprovideLoop(life, interval)
	return d, nil
}

// Bootstrap connects to the bootstrap peers and returns once one of them
// speaks our DHT; the others are dialled on in the background (a dead
// entry in a bootstrap list costs a get nothing), and the routing table
// fills in the background too (their liveness check, then a lookup of
// our own ID), so a node can start fetching at once. It fails with
// ErrNoBootstrap if peers were given and none answered.
func (d *DHT) Bootstrap(ctx context.Context) error {
	if len(d.boot) == 0 {
		return d.kad.Bootstrap(ctx)
	}
	dials := d.dialBootstrap()
	errs := make([]error, len(d.boot))
	foreign := false
	for range d.boot {
		var r dialResult
		select {
		case r = <-dials:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoBootstrap, ctx.Err())
		}
		if r.err != nil {
			errs[r.i] = r.err
			continue
		}
		if !r.speaks {
			foreign = true
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if d.waitRoutingTable(d.life) == nil && d.kad.Bootstrap(d.life) == nil {
				// One lookup of our own ID fills the table with the peers near us.
				_, _ = d.kad.GetClosestPeers(d.life, string(d.h.ID()))
			}
		}()
		return nil
	}
	if foreign {
		return fmt.Errorf("%w: the bootstrap peers do not speak %s (do they run p2pshare?)", ErrNoBootstrap, protocolID)
	}
	return fmt.Errorf("%w: %w", ErrNoBootstrap, errors.Join(errs...))
}

// identifyWait bounds how long a bootstrap dial waits for identify to
// tell which protocols the peer speaks. Connect usually returns after
// identify, but not when a connection already stood.
const identifyWait = 3 * time.Second

// speaks reports whether the connected peer p speaks our DHT.
func (d *DHT) speaks(ctx context.Context, p peer.ID) bool {
	ctx, cancel := context.WithTimeout(ctx, identifyWait)
	defer cancel()
	for {
		if ps, _ := d.h.Peerstore().SupportsProtocols(p, protocolID); len(ps) > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readyWait bounds how long Provide and FindProviders wait for a routing
// table peer when bootstrap peers were given.
const readyWait = 5 * time.Second

// ready reports whether the routing table holds a peer. If it is empty and
// bootstrap peers were given (just after Bootstrap, or every peer we knew
// is gone: they restarted, or we were offline) it rejoins through them
// and waits up to readyWait.
func (d *DHT) ready(ctx context.Context) bool {
	if d.kad.RoutingTable().Size() > 0 {
		return true
	}
	if len(d.boot) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	d.dialBootstrap()
	return d.waitRoutingTable(ctx) == nil
}

// dialResult is the outcome of dialling d.boot[i]: an error, or whether
// the peer speaks our DHT.
type dialResult struct {
	i      int
	err    error
	speaks bool
}

// dialBootstrap dials every bootstrap peer at once, in the background
// (until the DHT closes), and sends each outcome on the channel it
// returns, which has room for all of them. Connect returns once identify
// has run.
func (d *DHT) dialBootstrap() <-chan dialResult {
	out := make(chan dialResult, len(d.boot))
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, ai := range d.boot {
		if d.closed {
			out <- dialResult{i: i, err: d.life.Err()}
			continue
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			// A direct dial, past the swarm's dial backoff: kad-dht may have
			// dialled the peer a moment ago, and a backoff error would hide
			// why that dial failed (a handshake error names a swarm key).
			err := d.h.Connect(network.WithForceDirectDial(d.life, "bootstrap"), ai)
			out <- dialResult{i: i, err: err, speaks: err == nil && d.speaks(d.life, ai.ID)}
		}()
	}
	return out
}

// protocolID is the DHT's protocol ID under ProtocolPrefix.
const protocolID = protocol.ID(ProtocolPrefix + "/kad/1.0.0")

// waitRoutingTable returns once the routing table holds a peer: a peer
// that speaks our DHT joins it after kad-dht's liveness check.
func (d *DHT) waitRoutingTable(ctx context.Context) error {
	for d.kad.RoutingTable().Size() == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the routing table: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Provide announces c now and keeps reproviding it until Unprovide.
func (d *DHT) Provide(ctx context.Context, c cid.Cid) error {
	d.mu.Lock()
	d.provided[c] = true
	d.mu.Unlock()
	if !d.ready(ctx) {
		// Nobody to tell yet: record ourselves locally; the reprovide loop
		// and later lookups will find peers.
		return d.kad.Provide(ctx, c, false)
	}
	if err := d.kad.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("providing %s: %w", c, err)
	}
	return nil
}

// Unprovide stops reproviding c. Records already stored by other peers
// expire on their own.
func (d *DHT) Unprovide(c cid.Cid) {
	d.mu.Lock()
	delete(d.provided, c)
	d.mu.Unlock()
}

// FindProviders reports the peers that provide c, other than this node.
// The channel closes when the search ends or ctx is done.
func (d *DHT) FindProviders(ctx context.Context, c cid.Cid) <-chan peer.AddrInfo {
	d.ready(ctx)
	out := make(chan peer.AddrInfo)
	in := d.kad.FindProvidersAsync(ctx, c, 0)
	go func() {
		defer close(out)
		for ai := range in {
			if ai.ID == d.h.ID() {
				continue
			}
			if len(ai.Addrs) == 0 && d.h.Network().Connectedness(ai.ID) != network.Connected {
				ai.Addrs = d.h.Peerstore().Addrs(ai.ID)
			}
			select {
			case out <- ai:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// RoutingTableSize returns the number of peers in the routing table.
func (d *DHT) RoutingTableSize() int { return d.kad.RoutingTable().Size() }

// Close stops reproviding and shuts the DHT down.
func (d *DHT) Close() error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return d.kad.Close()
}

func (d *DHT) reprovideLoop(ctx context.Context, interval time.Duration) {
	defer d.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		cids := make([]cid.Cid, 0, len(d.provided))
		for c := range d.provided {
			cids = append(cids, c)
		}
		d.mu.Unlock()
		for _, c := range cids {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			_ = d.kad.Provide(pctx, c, true) // retried on the next tick
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
	}
}
