package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/p2pshare/p2pshare/peer"
)

// printer writes results to stdout and progress to stderr, as text or as
// JSON lines (one object per line with a "type" field; the event types
// are in events.go). Progress goes through a meter, chosen once per
// operation: a live bar when stderr is a terminal, status events with
// --json, nothing otherwise.
type printer struct {
	json, quiet bool
	out, errw   io.Writer
	// tty is set when stderr is a terminal: only then are bars drawn.
	tty bool

	mu sync.Mutex // serialises JSON lines
}

func newPrinter(c *cli.Context) *printer {
	p := &printer{json: c.Bool("json"), quiet: c.Bool("quiet"), out: c.App.Writer, errw: c.App.ErrWriter}
	if f, ok := p.errw.(*os.File); ok {
		p.tty = isatty.IsTerminal(f.Fd())
	}
	return p
}

// event prints one JSON line (JSON mode only). ev is one of the event
// structs of events.go.
func (p *printer) event(ev any) {
	if !p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	json.NewEncoder(p.out).Encode(ev)
}

// result prints a text line unless --json (then the event ev).
func (p *printer) result(ev any, text string) {
	if p.json {
		p.event(ev)
		return
	}
	fmt.Fprintln(p.out, text)
}

// bars reports whether progress is drawn as a live bar.
func (p *printer) bars() bool { return p.tty && !p.json && !p.quiet }

// meter shows the progress of one operation. update and end are safe for
// concurrent use; end must be called once, after the last update and
// before anything else is printed, and removes the bar.
type meter interface {
	update(done, total uint64, peers int)
	end()
}

// addMeter is the meter of adding path, of total bytes (0: unknown).
func (p *printer) addMeter(path string, total uint64) meter {
	switch {
	case p.json:
		return jsonMeter{p, func(done, _ uint64, _ int) any {
			return addStatusEvent{Type: "status", Time: now(), Path: path, BytesDone: int64(done)}
		}}
	case p.bars():
		return newBarMeter(p.errw, "adding "+displayName(filepath.Base(path)), total, false)
	}
	return nopMeter{}
}

// getMeter is the meter of a download.
func (p *printer) getMeter(label string) meter {
	switch {
	case p.json:
		return jsonMeter{p, func(done, total uint64, peers int) any {
			return getStatusEvent{Type: "status", Time: now(), BytesDone: done, BytesTotal: total, Peers: peers}
		}}
	case p.bars():
		return newBarMeter(p.errw, label, 0, true)
	}
	return nopMeter{}
}

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

type nopMeter struct{}

func (nopMeter) update(uint64, uint64, int) {}
func (nopMeter) end()                       {}

// jsonMeter prints a status event per update.
type jsonMeter struct {
	p  *printer
	ev func(done, total uint64, peers int) any
}

func (m jsonMeter) update(done, total uint64, peers int) { m.p.event(m.ev(done, total, peers)) }
func (jsonMeter) end()                                   {}

// barMeter draws one mpb bar on a terminal:
//
//	get  [=======>-------------]  12.0 MiB / 48.0 MiB  25%  3.9 MiB/s  ETA 9s  3 peers
//
// The rate and ETA are moving averages over the last few seconds; mpb
// redraws on its own goroutine, which end waits for.
type barMeter struct {
	prog  *mpb.Progress
	bar   *mpb.Bar
	peers atomic.Int64

	mu    sync.Mutex // guards last, total
	last  time.Time  // of the previous update; zero before the first
	total int64
}

// barRefresh is how often the bar is redrawn.
const barRefresh = 150 * time.Millisecond

func newBarMeter(w io.Writer, label string, total uint64, withPeers bool) *barMeter {
	m := &barMeter{total: int64(total)}
	m.prog = mpb.New(mpb.WithOutput(w), mpb.WithWidth(30), mpb.WithRefreshRate(barRefresh), mpb.WithAutoRefresh())
	appended := []decor.Decorator{
		decor.Counters(decor.SizeB1024(0), "  % .1f / % .1f"),
		decor.NewPercentage("%d", decor.WC{W: 6}),
		decor.Name("  "),
		decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30),
		decor.Name("  ETA "),
		decor.EwmaETA(decor.ET_STYLE_GO, 30),
	}
	if withPeers {
		appended = append(appended, decor.Any(func(decor.Statistics) string {
			return "  " + plural(int(m.peers.Load()), "peer")
		}))
	}
	m.bar = m.prog.New(int64(total), mpb.BarStyle(),
		mpb.PrependDecorators(decor.Name(label+" ")),
		mpb.AppendDecorators(appended...),
		mpb.BarRemoveOnComplete(),
	)
	return m
}

func (m *barMeter) update(done, total uint64, peers int) {
	m.peers.Store(int64(peers))
	m.mu.Lock()
	defer m.mu.Unlock()
	if total > 0 && int64(total) != m.total {
		m.total = int64(total)
		m.bar.SetTotal(m.total, false)
	}
	t := time.Now()
	if m.last.IsZero() {
		// The first update carries what came before the transfer (the
		// provider search, bytes already on disk): no rate sample.
		m.bar.SetCurrent(int64(done))
	} else {
		m.bar.EwmaSetCurrent(int64(done), t.Sub(m.last))
	}
	m.last = t
}

// end removes the bar and waits until mpb has drawn its last frame.
func (m *barMeter) end() {
	m.bar.Abort(true)
	m.prog.Wait()
}

// printError prints the one-line error (or a JSON error event). Control
// and other unprintable characters are shown escaped (\x1b), as an error
// can carry a name or a message from the network.
func printError(w io.Writer, asJSON bool, err error, code int) {
	msg := escapeControl(strings.ReplaceAll(err.Error(), "\n", " "))
	if asJSON {
		json.NewEncoder(os.Stdout).Encode(errorEvent{Type: "error", Message: msg, ExitCode: code})
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
