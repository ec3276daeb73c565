package transfer

import (
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// TestScaleLimits: on the smallest machine the resource manager scales
// for, the transfer scopes grant honest bulk transfer at medium priority,
// and the stream counts stay the defaults'.
func TestScaleLimits(t *testing.T) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	before := rcmgr.NewFixedLimiter(limits.Scale(0, 1024))
	ScaleLimits(&limits)
	after := rcmgr.NewFixedLimiter(limits.Scale(0, 1024))
	svc, svcPeer, proto, protoPeer, stream := limitsOf(after)
	medium := func(l int64) int64 { return l * 153 / 256 }
	for _, c := range []struct {
		name       string
		limit, min int64
	}{
		{"service", svc, 4 * streamNeed},
		{"service per peer", svcPeer, peerNeed},
		{"protocol", proto, 4 * streamNeed},
		{"protocol per peer", protoPeer, peerNeed},
		{"stream", stream, streamNeed},
	} {
		if medium(c.limit) < c.min {
			t.Errorf("%s: memory limit %d MiB grants %d MiB at medium priority, want %d MiB", c.name, c.limit>>20, medium(c.limit)>>20, c.min>>20)
		}
	}
	if b, a := before.GetServiceLimits(ServiceName).GetStreamLimit(network.DirInbound), after.GetServiceLimits(ServiceName).GetStreamLimit(network.DirInbound); a != b || a == 0 {
		t.Errorf("inbound streams of the service: %d, want the default %d", a, b)
	}
	if b, a := before.GetProtocolPeerLimits(ID).GetStreamTotalLimit(), after.GetProtocolPeerLimits(ID).GetStreamTotalLimit(); a != b || a == 0 {
		t.Errorf("streams per peer of the protocol: %d, want the default %d", a, b)
	}
}

// limitsOf reports the memory limits ScaleLimits acts on, for tests.
func limitsOf(l rcmgr.Limiter) (service, servicePeer, protocol, protocolPeer, stream int64) {
	return l.GetServiceLimits(ServiceName).GetMemoryLimit(),
		l.GetServicePeerLimits(ServiceName).GetMemoryLimit(),
		l.GetProtocolLimits(ID).GetMemoryLimit(),
		l.GetProtocolPeerLimits(ID).GetMemoryLimit(),
		l.GetStreamLimits(peer.ID("")).GetMemoryLimit()
}
