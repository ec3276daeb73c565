package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
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

// printError prints the one-line error (or a JSON error event). Control
// and other unprintable characters are shown escaped (\x1b), as an error
// can carry a name or a message from the network.
func printError(w io.Writer, asJSON bool, err error, code int) {
	msg := escapeControl(strings.ReplaceAll(err.Error(), "\n", " "))
	if asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"type": "error", "message": msg, "exit_code": code})
	}
	fmt.Fprintf(w, "p2pshare: %s\n", msg)
}

// displayName is how text output shows a name, path or symlink target
// that may come from the network: as it is when it holds only printable
// characters (so plain names print as they always have, and scripts can
// split `added <CID> <name>` lines), else in Go's quoted form
// (strconv.Quote: "a\x1b[2Jb"), so that no name can drive the terminal or
// break a line. A shown name that begins with a double quote is always
// the quoted form. --json output carries names unchanged, JSON-escaped.
func displayName(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

// escapeControl escapes the unprintable characters of s (and invalid
// UTF-8) as strconv.Quote would, leaving the rest of the text as it is.
func escapeControl(s string) string {
	if q := strconv.Quote(s); q[1:len(q)-1] == s {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// humanBytes formats a byte count with binary units.
func humanBytes(n uint64) string { return peer.FormatBytes(n) }
