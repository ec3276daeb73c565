package chunker

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// vectorsDir is ../shared/vectors beside the repo root.
const vectorsDir = "../../shared/vectors"

var (
	corpusOnce sync.Once
	corpusDir  string
	corpusErr  error
)

// corpus builds the reference corpus once per test binary with the
// vectors' own script.
func corpus(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(vectorsDir, "expected.tsv")); err != nil {
		t.Fatalf("reference vectors missing (%v): the shared/ folder must sit beside the repo", err)
	}
	corpusOnce.Do(func() {
		corpusDir, corpusErr = os.MkdirTemp("", "p2pshare-corpus")
		if corpusErr != nil {
			return
		}
		out, err := exec.Command("python3", filepath.Join(vectorsDir, "make_corpus.py"), filepath.Join(vectorsDir, "spec.txt"), corpusDir).CombinedOutput()
		if err != nil {
			corpusErr = err
			t.Logf("%s", out)
		}
	})
	if corpusErr != nil {
		t.Fatalf("building corpus: %v", corpusErr)
	}
	return corpusDir
}

// TestKuboVectors checks every root CID that Kubo v0.43.1 computed under
// the unixfs-v1-2025 profile.
func TestKuboVectors(t *testing.T) {
	dir := corpus(t)
	f, err := os.Open(filepath.Join(vectorsDir, "expected.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 4 {
			t.Fatalf("bad vector line %q", line)
		}
		name, flags, want, sum := cols[0], cols[1], cols[2], cols[3]
		n++
		t.Run(name+" "+flags, func(t *testing.T) {
			var opts Options
			for _, fl := range strings.Fields(flags) {
				switch {
				case fl == "-" || fl == "-r":
				case fl == "--hidden":
					opts.Hidden = true
				case fl == "--chunker=buzhash":
					opts.Chunker = ChunkerBuzhash
				case strings.HasPrefix(fl, "--chunker=size-"):
					var size int
					if _, err := fmt.Sscan(strings.TrimPrefix(fl, "--chunker=size-"), &size); err != nil {
						t.Fatal(err)
					}
					opts.ChunkSize = size
				default:
					t.Fatalf("unknown flag %q in vectors", fl)
				}
			}
			path := filepath.Join(dir, name)
			res, err := AddPath(context.Background(), path, opts, Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.CID.String() != want {
				t.Errorf("CID %s, Kubo says %s", res.CID, want)
			}
			if sum != "-" {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.Sum256(data)
				if hex.EncodeToString(h[:]) != sum {
					t.Errorf("corpus file SHA-256 differs from the vectors: the corpus script changed")
				}
			}
		})
	}
	if n < 8 {
		t.Fatalf("only %d vectors read", n)
	}
}
