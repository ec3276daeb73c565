package peer

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"testing"

	"github.com/ipfs/go-datastore/query"
)

var queryBlocks = query.Query{Prefix: "/block/", KeysOnly: true}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// FuzzImport feeds arbitrary bytes to import's decoding path (go-car's
// reader, then our verification and DAG checks): it must never panic,
// and a refused CAR must wrap ErrBadCAR and add no root.
func FuzzImport(f *testing.F) {
	good, hostile := sampleCARs(f)
	f.Add(good)
	for _, data := range hostile {
		f.Add(data)
	}
	r := openTestRepo(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		before, err := r.index.roots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.ImportReader(ctx, bytes.NewReader(data))
		if err == nil {
			return
		}
		if !errors.Is(err, ErrBadCAR) {
			t.Fatalf("refused with an error that is not ErrBadCAR: %v", err)
		}
		after, err := r.index.roots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) {
			t.Fatalf("a refused CAR added a root")
		}
	})
}
