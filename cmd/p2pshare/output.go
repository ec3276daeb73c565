package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
)

// printer writes results to stdout and progress to stderr, as text or as
// JSON lines (one object per line with a "type" field).
type printer struct {
	json, quiet bool
	out, errw   io.Writer
	tty         bool

	mu       sync.Mutex
	lastLine time.Time
	dirty    bool
}

func newPrinter(c *cli.Context) *printer {
	st, err := os.Stderr.Stat()
	tty := err == nil && st.Mode()&os.ModeCharDevice != 0
	return &printer{json: c.Bool("json"), quiet: c.Bool("quiet"), out: c.App.Writer, errw: c.App.ErrWriter, tty: tty}
}

// event prints one JSON object with the given type (JSON mode only).
func (p *printer) event(typ string, fields map[string]any) {
	if !p.json {
		return
	}
	fields["type"] = typ
	p.mu.Lock()
	defer p.mu.Unlock()
	json.NewEncoder(p.out).Encode(fields)
}

// result prints a text line unless --json (then fields as an event of typ).
func (p *printer) result(typ string, fields map[string]any, text string) {
	if p.json {
		p.event(typ, fields)
		return
	}
	p.clearProgress()
	fmt.Fprintln(p.out, text)
}

// progress shows a one-line progress indicator on a terminal, at most a few
// times a second; in JSON mode it emits a status event.
func (p *printer) progress(fields map[string]any, text string) {
	if p.json {
		fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
		p.event("status", fields)
		return
	}
	if p.quiet || !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.lastLine) < 100*time.Millisecond {
		return
	}
	p.lastLine = time.Now()
	p.dirty = true
	fmt.Fprintf(p.errw, "\r\033[K%s", text)
}

func (p *printer) clearProgress() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprint(p.errw, "\r\033[K")
		p.dirty = false
	}
}

// printError prints the one-line error (or a JSON error event).
func printError(w io.Writer, asJSON bool, err error, code int) {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"type": "error", "message": msg, "exit_code": code})
	}
	fmt.Fprintf(w, "p2pshare: %s\n", msg)
}

// humanBytes formats a byte count with binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
