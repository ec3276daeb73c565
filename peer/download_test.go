package peer

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// The leaf list a download hands its session is the order of the
// have-maps a seed sends: the DAG's distinct leaves by first appearance.
func TestDownloadLeavesInHaveMapOrder(t *testing.T) {
	n := startNode(t, NodeOptions{})
	root, _ := addFile(t, n, 8<<20, 256<<10)
	ctx := context.Background()
	want, err := n.Repo.store().Leaves(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	d, err := openDownload(n.Repo.store(), root, out)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Open(ctx, out); err != nil {
		t.Fatal(err)
	}
	if got := d.leaves(); len(want) != 32 || !slices.Equal(got, want) {
		t.Fatalf("download's leaves (%d) are not the seed's have-map order (%d)", len(got), len(want))
	}
}
