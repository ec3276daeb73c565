// Package gateway serves a node's blocks over HTTP as an IPFS gateway,
// through github.com/ipfs/boxo/gateway: deserialized files and folders under
// /ipfs/<CID>[/path] (content types, directory listings, Range requests,
// streaming) and the trustless formats (?format=raw, ?format=car with
// dag-scope and entity-bytes). It knows nothing of the DHT or of
// downloads, nor of where it listens (the seed serves the handler).
//
// The gateway answers from the blocks the node holds, and fetches the
// others on demand through the exchange it is given (peer.Node.Exchange:
// from the swarm, each block verified against its CID), one block at a
// time as boxo's readers need them, so a Range request in a file the node
// does not hold fetches only the blocks under that range (and boxo's
// read-ahead of a few leaves). Fetched blocks are kept in a memory cache
// of CacheBytes.
package gateway

import (
	"fmt"
	"net/http"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/exchange"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/gateway"
)

// Bounds on what one browser (or any HTTP client) can make the gateway
// hold or wait for, beside the exchange's own (see peer.Node.Exchange).
const (
	// maxRequests is how many requests are served at once; more get 429.
	maxRequests = 64
	// retrievalTimeout is how long a response may go without a byte
	// written (boxo's default): 504 before the headers, a cut-off
	// response after.
	retrievalTimeout = gateway.DefaultRetrievalTimeout
)

// NewHandler returns an http.Handler serving /ipfs/ paths from bs, which
// must hold only verified blocks (peer.Repo.Blockstore checks each against
// its CID as it reads it), and from ex for the blocks bs lacks (nil: none,
// the gateway serves only bs). ex must return only blocks it verified
// against their CIDs. Identity CIDs, such as the /ipfs/bafkqaaa probe, are
// answered from the CID itself (boxo's NewIdStore).
func NewHandler(bs blockstore.Blockstore, ex exchange.Interface) (http.Handler, error) {
	if ex == nil {
		ex = offline.Exchange(bs)
	} else {
		bs = newCache(bs, CacheBytes)
	}
	bs = blockstore.NewIdStore(bs)
	backend, err := gateway.NewBlocksBackend(blockservice.New(bs, ex))
	if err != nil {
		return nil, fmt.Errorf("building the gateway backend: %w", err)
	}
	h := gateway.NewHandler(gateway.Config{
		DeserializedResponses: true, NoDNSLink: true,
		MaxConcurrentRequests: maxRequests, RetrievalTimeout: retrievalTimeout,
	}, backend)
	mux := http.NewServeMux()
	mux.Handle("/ipfs/", h)
	return mux, nil
}
