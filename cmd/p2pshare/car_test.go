package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportImportCLI runs export and import as processes: without a
// seed (the repo opened directly) and through a running seed (the local
// API), and refuses a hostile file with one line and exit 1, a missing
// one with exit 2.
func TestExportImportCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	writeRandom(t, src, 1<<20+9)
	repoA, repoB, repoC := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	r := run(t, "--repo", repoA, "-q", "add", "--chunk-size", "65536", src)
	if r.code != 0 {
		t.Fatalf("add: %+v", r)
	}
	root := strings.TrimSpace(r.stdout)

	carFile := filepath.Join(dir, "x.car")
	if r := run(t, "--repo", repoA, "export", root, "-o", carFile); r.code != 0 || !strings.HasPrefix(r.stdout, "exported "+root) {
		t.Fatalf("export -o: %+v", r)
	}
	fileCAR, err := os.ReadFile(carFile)
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "--repo", repoA, "export", root)
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil || !bytes.Equal(stdout.Bytes(), fileCAR) {
		t.Fatalf("export to stdout differs from -o (err %v)", err)
	}

	// Without a seed.
	if r := run(t, "--repo", repoB, "-q", "import", carFile); r.code != 0 || strings.TrimSpace(r.stdout) != root {
		t.Fatalf("import: %+v", r)
	}
	if ls := run(t, "--repo", repoB, "ls"); !strings.Contains(ls.stdout, root) || !strings.Contains(ls.stdout, "complete") {
		t.Fatalf("ls after import: %+v", ls)
	}

	// Through a seed: the import is served at once, and export streams.
	seed(t, repoC)
	if r := run(t, "--repo", repoC, "import", carFile); r.code != 0 || !strings.HasPrefix(r.stdout, "imported "+root) {
		t.Fatalf("import through the seed: %+v", r)
	}
	viaSeed := filepath.Join(dir, "y.car")
	if r := run(t, "--repo", repoC, "export", root, "-o", viaSeed); r.code != 0 {
		t.Fatalf("export through the seed: %+v", r)
	}
	if got, err := os.ReadFile(viaSeed); err != nil || !bytes.Equal(got, fileCAR) {
		t.Fatalf("CAR exported through the seed differs (err %v)", err)
	}
	if ls := run(t, "--repo", repoC, "ls"); !strings.Contains(ls.stdout, root) || !strings.Contains(ls.stdout, "complete") {
		t.Fatalf("ls through the seed after import: %+v", ls)
	}

	// Hostile and missing files.
	truncated := filepath.Join(dir, "t.car")
	if err := os.WriteFile(truncated, fileCAR[:len(fileCAR)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{repoC, filepath.Join(dir, "d")} { // through the seed, and not
		r := run(t, "--repo", repo, "import", truncated)
		if r.code != 1 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "bad CAR") {
			t.Fatalf("truncated CAR: %+v; want exit 1 and one line", r)
		}
		if r := run(t, "--repo", repo, "import", filepath.Join(dir, "absent.car")); r.code != 2 {
			t.Fatalf("missing file: %+v; want exit 2", r)
		}
	}
	if ls := run(t, "--repo", filepath.Join(dir, "d"), "ls"); strings.TrimSpace(ls.stdout) != "" {
		t.Fatalf("a refused import is listed: %q", ls.stdout)
	}
	if r := run(t, "--repo", repoB, "export", "bafkreigicxwvav6t72kj2gdczzdhpzrljspk5bgzaknuhjxyn5smvbjdru", "-o", filepath.Join(dir, "z.car")); r.code != 1 {
		t.Fatalf("export of an absent CID: %+v; want exit 1", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "z.car")); err == nil {
		t.Fatal("a failed export left its file")
	}
}
