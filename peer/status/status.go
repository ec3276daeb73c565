// Package status serves a node's status page: its peers, its roots with
// their states and the downloads running now, with a chart of the last
// minutes' upload and download rates. The page is plain server-rendered
// HTML (html/template: names come from the network and are escaped) with
// an inline SVG chart; it reloads itself every few seconds.
package status

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/p2pshare/p2pshare/peer"
)

// HistoryLen is how many rate samples the chart shows: one a second, so
// the last five minutes.
const HistoryLen = 300

// Sample is the node's traffic rates over one second, in bytes per second.
type Sample struct {
	At       time.Time
	Up, Down float64
}

// ring keeps the last HistoryLen samples. Its sampler goroutine adds to
// it, page renders read it.
type ring struct {
	mu   sync.Mutex
	buf  [HistoryLen]Sample
	next int // where the next sample goes
	n    int // samples held, up to HistoryLen
}

func (r *ring) add(s Sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next = (r.next + 1) % HistoryLen
	r.n = min(r.n+1, HistoryLen)
}

// samples returns the samples held, oldest first.
func (r *ring) samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sample, 0, r.n)
	for i := range r.n {
		out = append(out, r.buf[(r.next-r.n+i+HistoryLen)%HistoryLen])
	}
	return out
}

// Page serves a node's status page (an http.Handler).
type Page struct {
	n    *peer.Node
	hist ring
}

// New returns n's status page and samples n's traffic once a second for
// its chart until ctx ends.
func New(ctx context.Context, n *peer.Node) *Page {
	p := &Page{n: n}
	go p.sample(ctx, time.Second)
	return p
}

// sample adds the rates of each interval to the history until ctx ends.
func (p *Page) sample(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastUp, lastDown := p.n.Traffic()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			up, down := p.n.Traffic()
			dt := now.Sub(last).Seconds()
			if dt > 0 {
				p.hist.add(Sample{At: now, Up: float64(up-lastUp) / dt, Down: float64(down-lastDown) / dt})
			}
			lastUp, lastDown, last = up, down, now
		}
	}
}

// peersTimeout bounds the pings that measure the peers' latency, so the
// page answers quickly.
const peersTimeout = 500 * time.Millisecond

// ServeHTTP renders the page.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st, err := p.n.Status(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	roots, err := p.n.Repo.List(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pctx, cancel := context.WithTimeout(r.Context(), peersTimeout)
	peers := p.n.Peers(pctx)
	cancel()
	v := view{Status: st, Peers: peers, Roots: roots, Transfers: p.n.Transfers(), Chart: newChart(p.hist.samples())}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := page.Execute(w, v); err != nil {
		// Headers are gone: the page ends where it broke.
		fmt.Fprintf(w, "<p>error: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

// view is what the template renders.
type view struct {
	Status    peer.Status
	Peers     []peer.PeerInfo
	Roots     []peer.RootInfo
	Transfers []peer.TransferInfo
	Chart     chart
}

// The chart's size in SVG user units.
const chartW, chartH = 600, 120

// chart is the rate history drawn as two SVG polylines.
type chart struct {
	Up, Down string // the polylines' points
	Max      string // the rate at the top of the chart
	Seconds  int    // the time the samples span
}

func newChart(s []Sample) chart {
	top := 1024.0 // a flat idle chart still has a scale
	for _, x := range s {
		top = max(top, x.Up, x.Down)
	}
	points := func(v func(Sample) float64) string {
		var b strings.Builder
		// The newest sample is at the right edge.
		off := HistoryLen - len(s)
		for i, x := range s {
			fmt.Fprintf(&b, "%.1f,%.1f ", float64(off+i)*chartW/(HistoryLen-1), chartH-v(x)/top*chartH)
		}
		return strings.TrimSpace(b.String())
	}
	return chart{
		Up:      points(func(x Sample) float64 { return x.Up }),
		Down:    points(func(x Sample) float64 { return x.Down }),
		Max:     rate(top),
		Seconds: len(s),
	}
}

func rate(bps float64) string { return peer.FormatBytes(uint64(bps)) + "/s" }

func percent(done, total uint64) string {
	if total == 0 {
		return "0%"
	}
	return fmt.Sprintf("%.0f%%", float64(done)*100/float64(total))
}

//go:embed status.html
var pageHTML string

var page = template.Must(template.New("status").Funcs(template.FuncMap{
	"bytes":   func(n any) string { return peer.FormatBytes(toUint(n)) },
	"rate":    rate,
	"percent": percent,
	"chartW":  func() int { return chartW },
	"chartH":  func() int { return chartH },
}).Parse(pageHTML))

func toUint(n any) uint64 {
	switch v := n.(type) {
	case uint64:
		return v
	case int64:
		return uint64(max(v, 0))
	}
	return 0
}
