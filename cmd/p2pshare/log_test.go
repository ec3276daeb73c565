package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogLevel: a seed at --log-level info logs, with their fields, the
// peer that connects to it; a get at info logs its download with root and
// bytes; a get at the default level logs nothing; a bad level is exit 2.
func TestLogLevel(t *testing.T) {
	dir := t.TempDir()
	seedRepo := filepath.Join(dir, "seed")
	if r := run(t, "--repo", seedRepo, "init"); r.code != 0 {
		t.Fatal(r)
	}
	sp, addr := startSeed(t, seedRepo, "--log-level", "info")
	file := filepath.Join(dir, "f.bin")
	data := writeRandom(t, file, 3*mib)
	root := addFile(t, seedRepo, file)

	quiet := run(t, "--repo", filepath.Join(dir, "quiet"), "get", root, "-o", filepath.Join(dir, "quiet.bin"), "--bootstrap", addr)
	if quiet.code != 0 {
		t.Fatalf("get: %+v", quiet)
	}
	if strings.Contains(quiet.stderr, "level=") {
		t.Fatalf("get at the default level logged: %q", quiet.stderr)
	}

	r := run(t, "--repo", filepath.Join(dir, "loud"), "get", "--log-level", "info", root, "-o", filepath.Join(dir, "loud.bin"), "--bootstrap", addr)
	if r.code != 0 {
		t.Fatalf("get --log-level info: %+v", r)
	}
	sameBytes(t, filepath.Join(dir, "loud.bin"), data)
	finished := regexp.MustCompile(`level=INFO msg="download finished" root=` + root + ` .*bytes=3145728 .*peers=1`)
	if !finished.MatchString(r.stderr) {
		t.Fatalf("get --log-level info stderr %q: want a download finished line with root, bytes and peers", r.stderr)
	}
	connected := regexp.MustCompile(`level=INFO msg="peer connected" peer=12D3\S+ addr=/ip4/127.0.0.1/tcp/\d+ direction=Inbound`)
	waitFor(t, 10*time.Second, "the seed's peer connected line", func() bool { return connected.MatchString(sp.errText()) })

	bad := run(t, "--repo", filepath.Join(dir, "bad"), "get", "--log-level", "loud", root)
	oneLine(t, bad.stderr, `--log-level "loud": want debug, info, warn or error`)
	if bad.code != 2 {
		t.Fatalf("bad --log-level: exit %d, want 2", bad.code)
	}
}
