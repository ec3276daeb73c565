package peer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pshare/p2pshare/transfer"
)

// Connection manager watermarks: keep up to 600 connections, trim to 400.
// A swarm of a few hundred peers is served without churn; the resource
// manager below is what protects the node from floods.
const (
	connLow  = 400
	connHigh = 600
)

// RelayResources are the limits of the circuit relay v2 service a
// publicly reachable seed offers: go-libp2p's defaults (128 reservations,
// 16 circuits per peer, 8 reservations per IP, 2 KiB buffers), except
// that each relayed connection may carry 16 MiB each way, not 128 KiB.
// go-libp2p's 128 KiB is enough to coordinate a hole punch, not to carry
// a single 1 MiB leaf: with it, a download behind two NATs would wait for
// the hole punch to move any data, and never move any where the punch
// cannot work. 16 MiB lets a download start over the relay at once and
// finish a small share there; a larger one moves to the direct connection
// when DCUtR opens one, or, where it cannot, goes on over a new circuit
// each time the relay ends one (at 16 MiB or after 2 minutes).
var RelayResources = func() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{Duration: 2 * time.Minute, Data: 16 << 20}
	return r
}()

// hostServices are what a host offers other peers' NAT traversal.
type hostServices struct {
	// relay: a circuit relay v2 service of RelayResources, which
	// go-libp2p runs only while AutoNAT finds the node publicly reachable.
	relay bool
	// autoNAT: AutoNAT's dial-back services (v1's, which drives other
	// nodes' reachability and with it their relay service and AutoRelay,
	// and v2's), and v2's checks of each of this host's addresses.
	autoNAT bool
}

// newHost builds the node's libp2p host: TCP and QUIC, TLS and Noise (TLS
// first, as go-libp2p and Kubo order them: its AES-GCM runs in hardware),
// yamux (libp2p's default muxer), a resource manager scaled to the machine
// with room for bulk transfer, a connection manager, and NAT traversal as
// go-libp2p intends it: AutoNAT v1's client (the node's reachability),
// the circuit relay v2 client with AutoRelay (reservations on connected
// peers that run a relay service), DCUtR hole punching, and the services
// of svc.
//
// With a swarm key (psk, 32 bytes) the host joins that private network
// only: every connection is encrypted with the key under the TLS or Noise
// handshake, and a peer without it cannot get past the handshake.
// go-libp2p has no pre-shared keys for QUIC (quic.NewTransport refuses a
// PSK), so such a host runs TCP alone; listen must then hold TCP
// addresses only (see PrivateListen).
//
// libp2p's metrics (and the resource manager's) go to reg.
func newHost(key crypto.PrivKey, listen []ma.Multiaddr, psk pnet.PSK, svc hostServices, bw metrics.Reporter, reg prometheus.Registerer) (host.Host, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	transfer.ScaleLimits(&limits) // room for bulk transfer under the stream reservations
	scaled := limits.AutoScale()
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, fmt.Errorf("resource manager metrics: %w", err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaled), rcmgr.WithTraceReporter(str))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(connLow, connHigh)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	var self atomic.Pointer[host.Host]
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.DefaultMuxers,
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.EnableHolePunching(),
		libp2p.EnableRelay(),
		// Relay candidates: the peers we are connected to (our own network
		// has no public relays; any p2pshare node can run a relay service).
		libp2p.EnableAutoRelayWithPeerSource(func(ctx context.Context, num int) <-chan peer.AddrInfo {
			ch := make(chan peer.AddrInfo, num)
			defer close(ch)
			if h := self.Load(); h != nil {
				for _, p := range (*h).Network().Peers() {
					if len(ch) == num {
						break
					}
					ch <- (*h).Peerstore().PeerInfo(p)
				}
			}
			return ch
		}, autorelay.WithMinCandidates(1)),
		libp2p.PrometheusRegisterer(reg),
		libp2p.UserAgent("p2pshare/0.1"),
	}
	if svc.relay {
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(RelayResources)))
	}
	if svc.autoNAT {
		opts = append(opts, libp2p.EnableNATService(), libp2p.EnableAutoNATv2())
	}
	if len(psk) > 0 {
		opts = append(opts, libp2p.PrivateNetwork(psk))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if bw != nil {
		opts = append(opts, libp2p.BandwidthReporter(bw))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("starting libp2p host: %w", err)
	}
	self.Store(&h)
	return h, nil
}
