package peer

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/metrics"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/p2pshare/p2pshare/transfer"
)

// nodeMetrics holds a node's Prometheus registry: libp2p's own metrics
// (swarm, identify, resource manager, relay, hole punching, ...), Go's
// runtime and process metrics, and p2pshare's, which transfer reports
// through transfer.Observer and the node counts where it provides. Each
// node has a registry of its own, so several nodes in one process (tests)
// do not collide; libp2p's collectors are package-wide, so its series
// describe the whole process.
type nodeMetrics struct {
	reg *prometheus.Registry

	blocksServed, bytesServed     prometheus.Counter
	blocksReceived, bytesReceived prometheus.Counter
	verifyFailures                prometheus.Counter
	peersBanned                   *prometheus.CounterVec
	lookups                       prometheus.Counter
	provides                      *prometheus.CounterVec
	downloadsActive               prometheus.Gauge
	downloadSeconds               *prometheus.HistogramVec
}

func newNodeMetrics() *nodeMetrics {
	reg := prometheus.NewRegistry()
	f := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "p2pshare", Name: name, Help: help})
	}
	m := &nodeMetrics{
		reg:            reg,
		blocksServed:   f("blocks_served_total", "Blocks sent to remotes over the transfer protocol."),
		bytesServed:    f("block_bytes_served_total", "Bytes of the blocks sent to remotes over the transfer protocol."),
		blocksReceived: f("blocks_received_total", "Blocks received by downloads, verified against their CID and stored."),
		bytesReceived:  f("block_bytes_received_total", "Bytes of the blocks received by downloads, verified and stored."),
		verifyFailures: f("verification_failures_total", "Blocks received that did not match their CID."),
		peersBanned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "p2pshare", Name: "peers_banned_total",
			Help: "Remotes banned from a download for a protocol violation, by reason (bad_block, malformed, unsolicited, unexpected_message)."},
			[]string{"reason"}),
		lookups: f("provider_lookups_total", "Provider lookups (DHT FindProviders) started by downloads."),
		provides: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "p2pshare", Name: "provides_total",
			Help: "Roots announced in the DHT, by result (ok, failed)."}, []string{"result"}),
		downloadsActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "p2pshare", Name: "downloads_active",
			Help: "Downloads running now."}),
		downloadSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "p2pshare", Name: "download_duration_seconds",
			Help:    "Duration of finished downloads, by result (complete, incomplete).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}, // 0.1 s to about 14 min
			[]string{"result"}),
	}
	reg.MustRegister(m.blocksServed, m.bytesServed, m.blocksReceived, m.bytesReceived, m.verifyFailures,
		m.peersBanned, m.lookups, m.provides, m.downloadsActive, m.downloadSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The DHT's series (otel's exporter fails only on bad options: none
	// are given, so its error is not expected and leaves them out).
	if c, err := otelCollector(); err == nil {
		reg.MustRegister(c)
	}
	return m
}

// register adds the series read from the running node at scrape time:
// its peers, routing table, roots, and bytes up and down, in total and
// per protocol (libp2p's bandwidth counter).
func (m *nodeMetrics) register(n *Node) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "p2pshare", Name: "peers", Help: "Connected peers."},
			func() float64 { return float64(len(n.Host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "p2pshare", Name: "routing_table_size", Help: "Peers in the DHT routing table."},
			func() float64 { return float64(n.DHT.RoutingTableSize()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "p2pshare", Name: "roots", Help: "Roots in the repo (shared and provided)."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				roots, err := n.Repo.index.roots(ctx)
				if err != nil {
					return -1
				}
				return float64(len(roots))
			}),
		bandwidthCollector{n.bw},
	)
}

var (
	bytesSentDesc     = prometheus.NewDesc("p2pshare_bytes_sent_total", "Bytes sent to peers (all protocols).", nil, nil)
	bytesReceivedDesc = prometheus.NewDesc("p2pshare_bytes_received_total", "Bytes received from peers (all protocols).", nil, nil)
	protoBytesDesc    = prometheus.NewDesc("p2pshare_protocol_bytes_total", "Bytes sent (out) and received (in) on streams, by libp2p protocol.",
		[]string{"protocol", "direction"}, nil)
)

// bandwidthCollector reads libp2p's bandwidth counter at scrape time.
type bandwidthCollector struct{ bw *metrics.BandwidthCounter }

func (c bandwidthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bytesSentDesc
	ch <- bytesReceivedDesc
	ch <- protoBytesDesc
}

func (c bandwidthCollector) Collect(ch chan<- prometheus.Metric) {
	tot := c.bw.GetBandwidthTotals()
	ch <- prometheus.MustNewConstMetric(bytesSentDesc, prometheus.CounterValue, float64(tot.TotalOut))
	ch <- prometheus.MustNewConstMetric(bytesReceivedDesc, prometheus.CounterValue, float64(tot.TotalIn))
	for p, st := range c.bw.GetBandwidthByProtocol() {
		if p == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(protoBytesDesc, prometheus.CounterValue, float64(st.TotalOut), string(p), "out")
		ch <- prometheus.MustNewConstMetric(protoBytesDesc, prometheus.CounterValue, float64(st.TotalIn), string(p), "in")
	}
}

// The transfer.Observer side of nodeMetrics.

func (m *nodeMetrics) BlockServed(n int) {
	m.blocksServed.Inc()
	m.bytesServed.Add(float64(n))
}

func (m *nodeMetrics) BlockReceived(n int) {
	m.blocksReceived.Inc()
	m.bytesReceived.Add(float64(n))
}

func (m *nodeMetrics) VerifyFailed()    { m.verifyFailures.Inc() }
func (m *nodeMetrics) Lookup()          { m.lookups.Inc() }
func (m *nodeMetrics) DownloadStarted() { m.downloadsActive.Inc() }

func (m *nodeMetrics) DownloadFinished(d time.Duration, ok bool) {
	m.downloadsActive.Dec()
	result := "incomplete"
	if ok {
		result = "complete"
	}
	m.downloadSeconds.WithLabelValues(result).Observe(d.Seconds())
}

func (m *nodeMetrics) PeerBanned(_ libp2ppeer.ID, _ cid.Cid, why transfer.BanReason, _ error) {
	m.peersBanned.WithLabelValues(string(why)).Inc()
}

var _ transfer.Observer = (*nodeMetrics)(nil)

// observer is what the node's transfer service reports to: its metrics,
// and its log for the events an operator reads about.
type observer struct {
	*nodeMetrics
	log *slog.Logger
}

// PeerBanned counts the ban and logs it with its reason.
func (o observer) PeerBanned(p libp2ppeer.ID, root cid.Cid, why transfer.BanReason, detail error) {
	o.nodeMetrics.PeerBanned(p, root, why, detail)
	o.log.Info("peer banned", "peer", p, "root", root, "reason", why.String(), "detail", detail)
}

// MetricsHandler serves the node's metrics in the Prometheus exposition
// formats (text, or what the scraper negotiates).
func (n *Node) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{Registry: n.metrics.reg})
}

// MetricsRegistry returns the node's Prometheus registry, so that a caller
// can add collectors of its own.
func (n *Node) MetricsRegistry() *prometheus.Registry { return n.metrics.reg }
