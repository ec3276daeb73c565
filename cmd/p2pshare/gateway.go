package main

import (
	"context"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/gateway"
)

// serveGateway serves n's blocks, and those it fetches from the swarm, as
// an IPFS HTTP gateway on addr (loopback unless addr names a host) until
// ctx ends, and prints `gateway http://ADDR`.
func serveGateway(ctx context.Context, n *peer.Node, addr string, p *printer) error {
	h, err := gateway.NewHandler(n.Repo.Blockstore(), n.Exchange(0))
	if err != nil {
		return err
	}
	a, err := serveHTTP(ctx, addr, h)
	if err != nil {
		return err
	}
	url := "http://" + a.String()
	p.result(gatewayEvent{Type: "gateway", URL: url}, "gateway "+url)
	return nil
}

// gatewayEvent is seed's line naming the gateway's address.
type gatewayEvent struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}
