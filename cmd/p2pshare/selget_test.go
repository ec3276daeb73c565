package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGetPathProcess: `get CID/b/file.bin` from a seed fetches that file
// alone, named after the path's last element; `get CID/b` through another
// seed's local API the subfolder; `get TICKET/path` works too; a missing
// path is exit 1 with a one-line reason, an unsafe one exit 2.
func TestGetPathProcess(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	files := map[string][]byte{}
	for _, rel := range []string{"a/one.bin", "b/file.bin", "b/sub/x.bin", "c/three.bin"} {
		p := filepath.Join(tree, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		files[rel] = writeRandom(t, p, 1<<20+len(files)*1000+17)
	}
	repoA := filepath.Join(dir, "a")
	addrA := seed(t, repoA)
	r := run(t, "--repo", repoA, "-q", "add", tree)
	if r.code != 0 {
		t.Fatalf("add through the seed: %+v", r)
	}
	root := strings.TrimSpace(r.stdout)

	// A fresh repo, no seed: the output is named file.bin.
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	cmd := exec.Command(bin, "--repo", filepath.Join(dir, "b"), "--json", "get", root+"/b/file.bin",
		"--bootstrap", addrA, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30s")
	cmd.Dir = work
	r = runCmd(t, cmd)
	if r.code != 0 {
		t.Fatalf("get CID/b/file.bin: %+v", r)
	}
	sameBytes(t, filepath.Join(work, "file.bin"), files["b/file.bin"])
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var sum struct {
		Type  string
		Bytes uint64
		From  map[string]uint64
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Type != "summary" {
		t.Fatalf("last JSON line %q (%v): want a summary", lines[len(lines)-1], err)
	}
	var fetched uint64
	for _, b := range sum.From {
		fetched += b
	}
	if sum.Bytes != uint64(len(files["b/file.bin"])) || fetched > sum.Bytes+8<<10 {
		t.Fatalf("summary %+v: want %d bytes, fetched no more than them and a few folder blocks", sum, len(files["b/file.bin"]))
	}
	if entries, _ := os.ReadDir(work); len(entries) != 1 {
		t.Fatalf("the output folder holds %d entries, want file.bin alone", len(entries))
	}

	// Through a seed's local API.
	repoC := filepath.Join(dir, "c")
	seed(t, repoC, "--bootstrap", addrA)
	outC := filepath.Join(dir, "b-folder")
	if r := run(t, "--repo", repoC, "get", "/ipfs/"+root+"/b", "-o", outC, "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get /ipfs/CID/b through a seed: %+v", r)
	}
	sameBytes(t, filepath.Join(outC, "file.bin"), files["b/file.bin"])
	sameBytes(t, filepath.Join(outC, "sub", "x.bin"), files["b/sub/x.bin"])
	if _, err := os.Stat(filepath.Join(outC, "one.bin")); err == nil {
		t.Fatal("get CID/b fetched more than b")
	}
	if ls := run(t, "--repo", repoC, "ls"); strings.Contains(ls.stdout, root) || !strings.Contains(ls.stdout, "b-folder") {
		t.Fatalf("seed C's ls after get CID/b: %q; want the subfolder, not the root", ls.stdout)
	}

	// A ticket for the root, and a path in it.
	tk := run(t, "--repo", repoA, "-q", "ticket", root)
	if tk.code != 0 {
		t.Fatalf("ticket: %+v", tk)
	}
	outT := filepath.Join(dir, "three.bin")
	if r := run(t, "--repo", filepath.Join(dir, "d"), "get", strings.TrimSpace(tk.stdout)+"/c/three.bin", "-o", outT, "--listen", "/ip4/127.0.0.1/tcp/0", "--timeout", "30s"); r.code != 0 {
		t.Fatalf("get TICKET/c/three.bin: %+v", r)
	}
	sameBytes(t, outT, files["c/three.bin"])

	// Missing and unsafe paths.
	r = run(t, "--repo", repoC, "get", root+"/b/nope", "-o", filepath.Join(dir, "nope"), "--timeout", "10s")
	if want := fmt.Sprintf("no such file or folder in %s: %q", root, "b/nope"); r.code != 1 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("get of a missing path: %+v; want exit 1 and one line with %s", r, want)
	}
	for _, arg := range []string{root + "/../a", root + "/b//file.bin", root + "/./b", root + "/b/.."} {
		if r := run(t, "--repo", filepath.Join(dir, "e"), "get", arg); r.code != 2 || !strings.Contains(r.stderr, "bad path") {
			t.Fatalf("get %s: %+v; want exit 2 (bad path)", arg, r)
		}
	}
}
