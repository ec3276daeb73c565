// Package gateway serves a node's blocks over HTTP as an IPFS gateway,
// through github.com/ipfs/boxo/gateway: deserialized files and folders under
// /ipfs/<CID>[/path] (content types, directory listings, Range requests,
// streaming) and the trustless formats (?format=raw, ?format=car with
// dag-scope and entity-bytes). It knows nothing of the DHT or of
// downloads, nor of where it listens (the seed serves the handler).
//
// The gateway answers from the blocks the node holds (offline exchange):
// a block the node does not hold is a 5xx/404 from boxo, not a swarm fetch.
package gateway

import (
	"fmt"
	"net/http"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/gateway"
)

// NewHandler returns an http.Handler serving /ipfs/ paths from bs, which
// must hold only verified blocks (peer.Repo.Blockstore checks each against
// its CID as it reads it). Identity CIDs, such as the /ipfs/bafkqaaa probe,
// are answered from the CID itself (boxo's NewIdStore).
func NewHandler(bs blockstore.Blockstore) (http.Handler, error) {
	bs = blockstore.NewIdStore(bs)
	backend, err := gateway.NewBlocksBackend(blockservice.New(bs, offline.Exchange(bs)))
	if err != nil {
		return nil, fmt.Errorf("building the gateway backend: %w", err)
	}
	h := gateway.NewHandler(gateway.Config{DeserializedResponses: true, NoDNSLink: true}, backend)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", h)
	return mux, nil
}
