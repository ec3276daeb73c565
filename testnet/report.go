package main

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
)

// table prints aligned columns.
type table struct {
	head []string
	rows [][]string
}

func (t table) print() {
	w := make([]int, len(t.head))
	for i, h := range t.head {
		w[i] = len(h)
	}
	for _, r := range t.rows {
		for i, c := range r {
			if i < len(w) && len(c) > w[i] {
				w[i] = len(c)
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "%-*s", w[i], c)
		}
		fmt.Println(strings.TrimRight(b.String(), " "))
	}
	fmt.Println()
	line(t.head)
	sep := make([]string, len(w))
	for i := range w {
		sep[i] = strings.Repeat("-", w[i])
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
}

// write saves results.json and, for downloads, progress.svg.
func (r *runner) write(scenario string, cfg config, data any, series []*getResult) {
	doc := map[string]any{"scenario": scenario, "mode": r.mode, "cap_mbit": cfg.capMbit, "results": data}
	b, _ := json.MarshalIndent(doc, "", "  ")
	// results.json is the last scenario's (the one run, unless bench);
	// each scenario also keeps its own, which bench's several need.
	os.WriteFile(filepath.Join(r.out, "results.json"), b, 0o644)
	os.WriteFile(filepath.Join(r.out, scenario+".json"), b, 0o644)
	if len(series) > 0 {
		os.WriteFile(filepath.Join(r.out, "progress.svg"), []byte(svgProgress(scenario, series)), 0o644)
		os.WriteFile(filepath.Join(r.out, scenario+"-progress.svg"), []byte(svgProgress(scenario, series)), 0o644)
	}
}

// svgProgress draws each download's bytes over time.
func svgProgress(title string, series []*getResult) string {
	const W, H, L, B = 720, 400, 60, 40
	var tmax float64
	var ymax uint64
	for _, s := range series {
		if s == nil {
			continue
		}
		for _, p := range s.Progress {
			tmax = max(tmax, p.T)
			ymax = max(ymax, p.Bytes)
		}
	}
	if tmax == 0 || ymax == 0 {
		tmax, ymax = 1, 1
	}
	var tmin = tmax
	for _, s := range series {
		if s != nil && len(s.Progress) > 0 {
			tmin = min(tmin, s.Progress[0].T)
		}
	}
	span := max(tmax-tmin, 1e-3)
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="20" font-size="14">%s: download progress</text>`+"\n", L, html.EscapeString(title))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="30" x2="%d" y2="%d" stroke="black"/>`+"\n", L, H-B, W-10, H-B, L, L, H-B)
	fmt.Fprintf(&b, `<text x="%d" y="%d">0 s</text><text x="%d" y="%d" text-anchor="end">%.1f s</text>`+"\n", L, H-B+16, W-10, H-B+16, span)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%.0f MiB</text><text x="%d" y="%d" text-anchor="end">0</text>`+"\n", L-4, 40, float64(ymax)/(1<<20), L-4, H-B)
	for i, s := range series {
		if s == nil || len(s.Progress) == 0 {
			continue
		}
		var pts []string
		for _, p := range s.Progress {
			x := L + (p.T-tmin)/span*float64(W-10-L)
			y := float64(H-B) - float64(p.Bytes)/float64(ymax)*float64(H-B-30)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", W-110, 50+16*i, c, html.EscapeString(s.Peer))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
