package transfer

import (
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// What honest bulk transfer holds in the resource manager's scopes
// (message buffers and uploads are reserved at medium priority, which
// the resource manager grants up to 153/256 of a limit):
//
//   - a session's stream: the block being read, those waiting in the put
//     pipeline and those being stored, 1+putQueue+putWorkers blocks of up
//     to 2 MiB (22 MiB);
//   - a server's stream: the block being uploaded (2 MiB) and WANTs of
//     a few hundred bytes.
//
// Below these a stream still works, with a shallower pipeline: it waits
// for its own buffers to be freed (see reserve).
const (
	streamNeed = (1 + putQueue + putWorkers) * (MaxMessageLen + 64)
	// peerNeed covers a session stream and an upload to the same peer for
	// two roots at once.
	peerNeed = 2 * (streamNeed + MaxBlockSize)
)

// ScaleLimits raises the memory limits of cfg that the transfer protocol
// meets (the ServiceName service and the ID protocol, in all and per
// peer, and every stream) to what honest bulk transfer holds at medium
// priority, and keeps the stream-count limits cfg has. Call it after
// libp2p.SetDefaultServiceLimits and before scaling cfg:
//
//	limits := rcmgr.DefaultLimits
//	libp2p.SetDefaultServiceLimits(&limits)
//	transfer.ScaleLimits(&limits)
//	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
//
// Limits already higher are left alone. Without it transfer still works
// within the defaults, with shallower pipelines.
func ScaleLimits(cfg *rcmgr.ScalingLimitConfig) {
	need := func(bytes int64) int64 { return bytes*256/153 + 1 }
	atLeast := func(l rcmgr.BaseLimit, bytes int64) rcmgr.BaseLimit {
		l.Memory = max(l.Memory, need(bytes))
		return l
	}
	// The whole service: four streams in full flight at once at the least
	// (many more with 1 MiB leaves), more as the machine's memory allows
	// (the defaults' increase).
	cfg.AddServiceLimit(ServiceName, atLeast(cfg.ServiceBaseLimit, 4*streamNeed), cfg.ServiceLimitIncrease)
	cfg.AddServicePeerLimit(ServiceName, atLeast(cfg.ServicePeerBaseLimit, peerNeed), cfg.ServicePeerLimitIncrease)
	cfg.AddProtocolLimit(ID, atLeast(cfg.ProtocolBaseLimit, 4*streamNeed), cfg.ProtocolLimitIncrease)
	cfg.AddProtocolPeerLimit(ID, atLeast(cfg.ProtocolPeerBaseLimit, peerNeed), cfg.ProtocolPeerLimitIncrease)
	// Every stream's own limit (the resource manager has one for all
	// protocols): other protocols reserve far less, and the peer, service
	// and system scopes still bound the total.
	cfg.StreamBaseLimit.Memory = max(cfg.StreamBaseLimit.Memory, need(streamNeed))
}
