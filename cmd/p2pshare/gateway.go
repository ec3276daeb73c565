package main

import (
	"context"
	"net/http"

	"github.com/p2pshare/p2pshare/peer"
	"github.com/p2pshare/p2pshare/peer/gateway"
	"github.com/p2pshare/p2pshare/peer/status"
)

// serveGateway serves n's blocks, and those it fetches from the swarm, as
// an IPFS HTTP gateway on addr (loopback unless addr names a host), and
// n's status page at /, until ctx ends, and prints `gateway http://ADDR`.
func serveGateway(ctx context.Context, n *peer.Node, addr string, p *printer) error {
	h, err := gatewayHandler(ctx, n)
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

// gatewayHandler is what seed --gateway serves: the gateway under /ipfs/
// and the status page at /, whose chart samples until ctx ends.
func gatewayHandler(ctx context.Context, n *peer.Node) (http.Handler, error) {
	gw, err := gateway.NewHandler(n.Repo.Blockstore(), n.Exchange(0))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", gw)
	mux.Handle("GET /{$}", status.New(ctx, n))
	return mux, nil
}
