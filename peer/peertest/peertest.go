// Package peertest builds real libp2p hosts for tests: loopback addresses,
// OS-chosen ports, closed by t.Cleanup. It deliberately does not import
// package peer, so that the packages peer depends on (transfer, dht) can use
// it in their own tests without an import cycle.
package peertest

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// NewHost returns a libp2p host listening on loopback TCP and QUIC with
// ephemeral ports. It is closed when the test ends.
func NewHost(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	base := []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.DisableMetrics(),
		libp2p.DisableRelay(),
	}
	h, err := libp2p.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("creating libp2p host: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// NewHosts returns n hosts made by NewHost.
func NewHosts(t testing.TB, n int, opts ...libp2p.Option) []host.Host {
	t.Helper()
	hs := make([]host.Host, n)
	for i := range hs {
		hs[i] = NewHost(t, opts...)
	}
	return hs
}

// connectTimeout bounds a test's dial.
const connectTimeout = 10 * time.Second

// Connect connects a to b and fails the test if it cannot.
func Connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connecting %s to %s: %v", a.ID(), b.ID(), err)
	}
}

// Info returns the AddrInfo of h.
func Info(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// HTTPGet sends a GET to url with the headers hdr and returns the response
// with its whole body; any error ends the test.
func HTTPGet(t testing.TB, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := HTTPDo(url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// HTTPDo is HTTPGet for responses that may fail or be cut off: it returns
// what arrived and the error, if any.
func HTTPDo(url string, hdr map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}
