package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTicketProcess: add through a seed prints a ticket; with it alone a
// fresh repo gets the file (no --bootstrap), and so does another seed
// through its local API; `ticket CID` prints one too.
func TestTicketProcess(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	data := writeRandom(t, src, 2<<20+9)
	repoA := filepath.Join(dir, "a")
	seed(t, repoA)
	add := run(t, "--repo", repoA, "add", "--chunk-size", "262144", src)
	lines := strings.Split(add.stdout, "\n")
	if add.code != 0 || len(lines) != 3 || lines[2] != "" {
		t.Fatalf("add through the seed: %+v; want two lines", add)
	}
	root, ok := strings.CutPrefix(lines[0], "added ")
	root, ok2 := strings.CutSuffix(root, " f.bin")
	ticket, ok3 := strings.CutPrefix(lines[1], "ticket p2ps2") // named: version 2
	if !ok || !ok2 || !ok3 {
		t.Fatalf("add printed %q; want added <CID> f.bin, then ticket p2ps2...", add.stdout)
	}
	ticket = "p2ps2" + ticket
	if q := run(t, "--repo", repoA, "-q", "add", "--chunk-size", "262144", src); q.stdout != root+"\n" {
		t.Fatalf("add -q printed %q, want the CID alone", q.stdout)
	}
	js := run(t, "--repo", repoA, "--json", "add", "--chunk-size", "262144", src)
	var ev struct{ Type, CID, Ticket string }
	if err := json.Unmarshal([]byte(strings.SplitN(js.stdout, "\n", 2)[0]), &ev); err != nil || ev.Type != "added" || ev.CID != root || ev.Ticket != ticket {
		t.Fatalf("add --json first line %q (%v): want an added event with the ticket", js.stdout, err)
	}
	if r := run(t, "--repo", repoA, "ticket", root); r.code != 0 || r.stdout != "ticket "+ticket+"\n" {
		t.Fatalf("ticket CID: %+v, want ticket %s", r, ticket)
	}
	if r := run(t, "--repo", repoA, "-q", "ticket", root); r.code != 0 || r.stdout != ticket+"\n" {
		t.Fatalf("ticket -q CID: %+v, want the ticket alone", r)
	}
	if r := run(t, "--repo", repoA, "ticket", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"); r.code != 1 || !strings.Contains(r.stderr, "not shared") {
		t.Fatalf("ticket for a root the seed does not hold: %+v, want exit 1, not shared", r)
	}

	// With no -o, the file takes the name the ticket carries.
	workB := filepath.Join(dir, "work-b")
	os.Mkdir(workB, 0o755)
	cmd := exec.Command(bin, "--repo", filepath.Join(dir, "b"), "get", ticket, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30s")
	cmd.Dir = workB
	if r := runCmd(t, cmd); r.code != 0 {
		t.Fatalf("get TICKET with no bootstrap: %+v", r)
	}
	sameBytes(t, filepath.Join(workB, "f.bin"), data)

	repoC := filepath.Join(dir, "c")
	seed(t, repoC) // knows no peer: only the ticket leads it to A
	workC := filepath.Join(dir, "work-c")
	os.Mkdir(workC, 0o755)
	cmd = exec.Command(bin, "--repo", repoC, "get", ticket, "--timeout", "30s")
	cmd.Dir = workC
	if r := runCmd(t, cmd); r.code != 0 {
		t.Fatalf("get TICKET through a seed: %+v", r)
	}
	sameBytes(t, filepath.Join(workC, "f.bin"), data)
	outC := filepath.Join(dir, "c.bin")
	if r := run(t, "--repo", repoC, "get", ticket, "-o", outC, "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get TICKET -o through a seed: %+v", r)
	}
	sameBytes(t, outC, data)
}

// TestShareProcess: share with no seed running serves until SIGINT (then
// exits 0) and its ticket alone gets the file elsewhere; with a seed
// running it adds through the seed and returns at once.
func TestShareProcess(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f.bin")
	data := writeRandom(t, src, 1<<20+3)
	repoA := filepath.Join(dir, "a")
	sh := start(t, "share", "--repo", repoA, "share", "--listen", loopback, src)
	ticket := strings.TrimPrefix(sh.firstLine(t, "ticket ", 30*time.Second), "ticket ")
	if lines := strings.Split(sh.outText(), "\n"); !strings.HasPrefix(lines[0], "added ") || !strings.HasSuffix(lines[0], " f.bin") {
		t.Fatalf("share printed %q first, want added <CID> f.bin", lines[0])
	}
	if !strings.HasPrefix(ticket, "p2ps2") {
		t.Fatalf("share's ticket line is not ticket p2ps2... (named): %q", ticket)
	}
	out := filepath.Join(dir, "b.bin")
	if r := run(t, "--repo", filepath.Join(dir, "b"), "get", ticket, "-o", out, "--listen", loopback, "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get TICKET from share: %+v\nshare: %s", r, sh.errText())
	}
	sameBytes(t, out, data)
	sh.cmd.Process.Signal(syscall.SIGINT)
	if !sh.wait(15 * time.Second) {
		t.Fatal("share still running 15 s after SIGINT")
	}
	if sh.code != 0 {
		t.Fatalf("share ended by SIGINT with exit %d, want 0; stderr %q", sh.code, sh.errText())
	}
	if want := "sharing; press Ctrl-C to stop\n"; sh.errText() != want {
		t.Fatalf("share's stderr %q, want %q", sh.errText(), want)
	}

	// With a seed running on the repo, share hands the paths to it.
	seed(t, repoA)
	src2 := filepath.Join(dir, "g.bin")
	data2 := writeRandom(t, src2, 300<<10)
	r := run(t, "--repo", repoA, "-q", "share", src2)
	ticket = strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(ticket, "p2ps2") || strings.Contains(ticket, "\n") {
		t.Fatalf("share -q through the seed: %+v, want one ticket and exit 0", r)
	}
	out2 := filepath.Join(dir, "g-copy.bin")
	if r := run(t, "--repo", filepath.Join(dir, "c"), "get", ticket, "-o", out2, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get TICKET from share through the seed: %+v", r)
	}
	sameBytes(t, out2, data2)
}
