package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/p2pshare/p2pshare/peer"
)

// TestEventFields pins the JSON field names of every --json event:
// scripts and the testnet parse them, so a field may be added but never
// renamed or dropped.
func TestEventFields(t *testing.T) {
	cases := []struct {
		name string
		ev   any
		keys string
	}{
		{"add status", addStatusEvent{}, "bytes_done path time type"},
		{"get status", getStatusEvent{}, "bytes_done bytes_total peers time type"},
		{"added", addedEvent{Ticket: "p2ps1x"}, "cid name size ticket type"},
		{"added without a ticket", addedEvent{}, "cid name size type"},
		{"add summary", addSummaryEvent{}, "added type"},
		{"get summary", getSummaryEvent{}, "bytes cid from path seconds type wasted"},
		{"get summary with waste", getSummaryEvent{WastedFrom: map[string]uint64{"p": 1}}, "bytes cid from path seconds type wasted wasted_from"},
		{"get summary with relayed bytes", getSummaryEvent{RelayedFrom: map[string]uint64{"p": 1}}, "bytes cid from path relayed_from seconds type wasted"},
		{"error", errorEvent{}, "exit_code message type"},
		{"init", initEvent{}, "peer_id type"},
		{"id", idEvent{}, "addrs peer_id type"},
		{"root", rootEvent{}, "cid name path size state type"},
		{"removed", removedEvent{}, "cid type"},
		{"status", statusEvent{}, "addrs bytes_down bytes_up lan_peers mdns nat peer_id peers relayed roots routing_table running type"},
		{"listening", listeningEvent{}, "addr type"},
		{"swarm key", swarmKeyEvent{}, "key type"},
		{"ticket", ticketEvent{}, "addrs cid ticket type"},
		{"peer", peerEvent{}, "addr bytes_down bytes_up direction latency_ms peer_id rate_down rate_up type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if got := strings.Join(keys, " "); got != tc.keys {
				t.Fatalf("%s has fields %q, want %q", b, got, tc.keys)
			}
		})
	}
}

// TestPeerTable checks get -v's table: most bytes first, shares of the
// total, wasted bytes per peer, a peer that only wasted listed too.
func TestPeerTable(t *testing.T) {
	res := peer.GetResult{
		From:        map[string]uint64{"peerA": 1 << 20, "peerB": 3 << 20},
		WastedFrom:  map[string]uint64{"peerA": 1024, "peerC": 2048},
		RelayedFrom: map[string]uint64{"peerB": 512 << 10},
	}
	lines := strings.Split(strings.TrimSuffix(peerTable(res), "\n"), "\n")
	want := []*regexp.Regexp{
		regexp.MustCompile(`^peer +bytes +share +wasted +relayed$`),
		regexp.MustCompile(`^peerB +3\.0 MiB +75\.0% +0 B +512\.0 KiB$`),
		regexp.MustCompile(`^peerA +1\.0 MiB +25\.0% +1\.0 KiB +0 B$`),
		regexp.MustCompile(`^peerC +0 B +0\.0% +2\.0 KiB +0 B$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d is %q, want %s", i, lines[i], re)
		}
	}
}

// ptyRun runs the binary with stdout and stderr on a pseudo-terminal of
// 140 columns, as in an interactive shell, and returns everything it
// wrote there and its exit code.
func ptyRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 140})
	if err != nil {
		t.Fatalf("starting %v on a pty: %v", args, err)
	}
	defer f.Close()
	var out bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Reading ends with EIO once the process exits and the pty's
		// other side closes.
		_, err := io.Copy(&out, f)
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
			t.Errorf("reading the pty: %v", err)
		}
	}()
	err = cmd.Wait()
	wg.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// ansi matches the terminal control sequences mpb draws with.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// frames splits what a terminal received into the lines and redrawn
// frames it showed, without control sequences.
func frames(raw string) []string {
	s := ansi.ReplaceAllString(raw, "\n")
	var out []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestGetBarOnTerminal runs get on a terminal (a pty) against a seed,
// slowed by --max-download so that the bar is drawn many times: the bar
// shows bytes, rate, ETA and the peers in use, then gives way to the
// summary line and (-v) the per-peer table.
func TestGetBarOnTerminal(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	writeRandom(t, src, 6<<20)
	repoA := filepath.Join(dir, "a")
	_, addrA := startSeed(t, repoA)
	root := addFile(t, repoA, src, "--chunk-size", "262144")
	out := filepath.Join(dir, "out.bin")
	raw, code := ptyRun(t, "--repo", filepath.Join(dir, "b"), "get", root, "-o", out, "-v", "--bootstrap", addrA,
		"--listen", loopback, "--max-download", "2MB", "--timeout", "30s")
	lines := frames(raw)
	if code != 0 {
		t.Fatalf("get on a pty exited %d:\n%s", code, strings.Join(lines, "\n"))
	}
	bar := regexp.MustCompile(`^get +\[[=>-]+\] +[0-9.]+ (B|KiB|MiB) / 6\.0 MiB +[0-9]+% +[0-9.]+ (B|KiB|MiB)/s +ETA [0-9hms.]+ +1 peer$`)
	var bars []string
	for _, l := range lines {
		if bar.MatchString(l) {
			bars = append(bars, l)
		}
	}
	if len(bars) < 2 {
		t.Fatalf("no bar with bytes, rate, ETA and peers drawn (want a few frames); the terminal showed:\n%s", strings.Join(lines, "\n"))
	}
	mid := bars[len(bars)/2]
	t.Logf("a frame of the bar (%d drawn):\n%s", len(bars), mid)
	if !strings.Contains(raw, "\x1b[") {
		t.Errorf("no control sequences on the terminal: the bar was not redrawn in place")
	}
	summary := regexp.MustCompile(`^got ` + root + ` ` + regexp.QuoteMeta(out) + ` \(6\.0 MiB in [0-9.]+s, [0-9.]+ (KiB|MiB)/s from 1 peer\)$`)
	i := slices.IndexFunc(lines, summary.MatchString)
	if i < 0 {
		t.Fatalf("no summary line `got %s %s (...)`; the terminal showed:\n%s", root, out, strings.Join(lines, "\n"))
	}
	if i+2 >= len(lines) || !strings.HasPrefix(lines[i+1], "peer ") || !strings.HasPrefix(lines[i+2], peerID(addrA)) || !strings.Contains(lines[i+2], "100.0%") {
		t.Fatalf("-v: no per-peer table after the summary line:\n%s", strings.Join(lines[i:], "\n"))
	}
	t.Logf("summary:\n%s", strings.Join(lines[i:min(i+3, len(lines))], "\n"))
}

// TestAddOnTerminal: on a terminal add draws its bar on stderr and
// removes it, and its result line stays as without a terminal.
func TestAddOnTerminal(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	writeRandom(t, src, 3<<20)
	raw, code := ptyRun(t, "--repo", filepath.Join(dir, "r"), "add", src)
	lines := frames(raw)
	if code != 0 || len(lines) == 0 {
		t.Fatalf("add on a pty exited %d:\n%s", code, raw)
	}
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^added baf[a-z0-9]+ f\.bin$`).MatchString(last) {
		t.Fatalf("add on a terminal ended with %q, want added <CID> f.bin; it showed:\n%s", last, strings.Join(lines, "\n"))
	}
}
