package peer

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// MDNSService is the DNS-SD service name under which p2pshare nodes find
// each other on the local network: p2pshare's own, not IPFS's _p2p._udp,
// so that they neither mix with IPFS nodes nor dial them.
const MDNSService = "_p2pshare._udp"

// lanDialTimeout bounds a dial to a peer found by mDNS.
const lanDialTimeout = 10 * time.Second

// lanRetries are the waits before each attempt to connect to a peer found
// by mDNS: three attempts over about 6 s.
var lanRetries = []time.Duration{0, time.Second, 5 * time.Second}

// lanYield is how long the node with the greater peer ID of two that
// found each other waits before it dials: two nodes that dial each other
// at the same instant from the ports they listen on (TCP with port reuse)
// meet in one simultaneous-open connection, on which both speak first in
// TLS and the handshake fails, on every retry if their timers stay in
// step. The other node's dial usually lands within the wait; retries are
// jittered as well.
const lanYield = 300 * time.Millisecond

// lanWait is the wait before attempt i to connect to a LAN peer.
func lanWait(i int, self, other libp2ppeer.ID) time.Duration {
	wait := lanRetries[i]
	if i == 0 && self > other {
		wait = lanYield
	}
	if wait > 0 {
		wait += rand.N(wait / 2)
	}
	return wait
}

// startMDNS advertises the node on the local network and connects to the
// p2pshare peers found there. Once connected, a peer that speaks our DHT
// joins the routing table (kad-dht adds connected peers after identify),
// so two nodes of a LAN with no bootstrap peer form one DHT. A failure to
// start (no multicast interface) is logged: mDNS is a help, not a need.
func (n *Node) startMDNS() {
	svc := mdns.NewMdnsService(n.Host, MDNSService, lanNotifee{n})
	if err := svc.Start(); err != nil {
		n.log.Warn("mDNS: not discovering LAN peers", "err", err)
		svc.Close()
		return
	}
	n.mdns = svc
}

// lanNotifee hands the peers mDNS finds to the node.
type lanNotifee struct{ n *Node }

// HandlePeerFound connects to a peer found on the LAN. mdns calls it on a
// goroutine of its own for each answer.
func (l lanNotifee) HandlePeerFound(ai libp2ppeer.AddrInfo) {
	n := l.n
	if ai.ID == n.Host.ID() {
		return
	}
	n.foundOnLAN(ai.ID)
	if n.Host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	// Join the node's goroutines, unless it is closing.
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	defer n.wg.Done()
	// mDNS reports a peer once per record lifetime (zeroconf caches what
	// it has handed out), so a dial that fails now, to a peer still
	// starting or on a busy machine, is tried again here.
	var err error
	for i := range lanRetries {
		if wait := lanWait(i, n.Host.ID(), ai.ID); wait > 0 {
			select {
			case <-n.life.Done():
				return
			case <-time.After(wait):
			}
			if n.Host.Network().Connectedness(ai.ID) == network.Connected {
				return // it dialled us meanwhile
			}
			if sw, ok := n.Host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(ai.ID) // a fresh attempt, not the backoff's answer
			}
		}
		ctx, cancel := context.WithTimeout(n.life, lanDialTimeout)
		err = n.Host.Connect(ctx, ai)
		cancel()
		if err == nil {
			n.log.Info("mDNS: connected to LAN peer", "peer", ai.ID)
			return
		}
		n.log.Debug("mDNS: connecting to LAN peer", "peer", ai.ID, "attempt", i+1, "err", err)
	}
	n.log.Info("mDNS: LAN peer unreachable", "peer", ai.ID, "err", err)
}
