package peer

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// otelCollector is the process's bridge from OpenTelemetry metrics into
// Prometheus, made once: go-libp2p-kad-dht reports its metrics (RPCs in
// and out by message type, their bytes and latencies, the network size
// estimate) only through otel's global MeterProvider (it takes no
// MeterProvider option: its instruments are made from otel.Meter when its
// package loads, and otel hands them to the first provider set), so the
// bridge is one per process, as libp2p's own collectors are, and every
// node's registry collects from it. The exporter is otel's own
// (go.opentelemetry.io/otel/exporters/prometheus) rather than a
// translation of ours; its series are named as Kubo exposes the same
// DHT's (rpc_inbound_messages_total{message_type=...}, ...), with
// otel_scope_name saying which library reports them.
var otelCollector = sync.OnceValues(func() (prometheus.Collector, error) {
	var cap captureRegisterer
	exp, err := otelprom.New(otelprom.WithRegisterer(&cap), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("otel prometheus exporter: %w", err)
	}
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)))
	return cap.c, nil
})

// captureRegisterer keeps the collector the otel exporter registers, so
// that it can be added to each node's registry (a prometheus.Registry
// collects from a collector registered in others too).
type captureRegisterer struct{ c prometheus.Collector }

func (r *captureRegisterer) Register(c prometheus.Collector) error {
	r.c = c
	return nil
}

func (r *captureRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		r.c = c
	}
}

func (r *captureRegisterer) Unregister(prometheus.Collector) bool { return false }
