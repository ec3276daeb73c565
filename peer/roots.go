package peer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"

	"github.com/p2pshare/p2pshare/chunker"
)

// ErrNotShared is returned by Remove for a root the repo does not hold.
var ErrNotShared = errors.New("not shared by this repo")

// RootInfo is one line of ls.
type RootInfo struct {
	CID   string    `json:"cid"`
	Name  string    `json:"name"`
	Size  uint64    `json:"size"`
	State string    `json:"state"`
	Path  string    `json:"path,omitempty"`
	Added time.Time `json:"added"`
}

// List returns the shared roots with their state on disk: complete,
// partial (a download in progress or interrupted), missing (a file is gone)
// or changed (a file's size or modification time differs from when it was
// indexed).
func (r *Repo) List(ctx context.Context) ([]RootInfo, error) {
	roots, err := r.index.roots(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]RootInfo, 0, len(roots))
	for _, e := range roots {
		state := e.State
		if state == StateComplete && !e.Copy {
			state, err = r.diskState(ctx, e.CID)
			if err != nil {
				return nil, err
			}
		}
		out = append(out, RootInfo{CID: e.CID.String(), Name: e.Name, Size: e.Size, State: state, Path: e.Path, Added: e.Added})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Added.Before(out[j].Added) })
	return out, nil
}

func (r *Repo) diskState(ctx context.Context, root cid.Cid) (string, error) {
	files, err := r.index.rootFiles(ctx, root)
	if err != nil {
		return "", err
	}
	state := StateComplete
	for _, f := range files {
		st, err := os.Stat(f.Path)
		switch {
		case err != nil:
			return StateMissing, nil
		case f.changed(st):
			state = StateChanged
		}
	}
	return state, nil
}

// Remove stops sharing root: its index entries go, the user's files stay.
// Internal DAG nodes that no other root uses are deleted too.
func (r *Repo) Remove(ctx context.Context, root cid.Cid) error {
	if _, err := r.index.root(ctx, root); err != nil {
		if errors.Is(err, ds.ErrNotFound) {
			return fmt.Errorf("%s: %w", root, ErrNotShared)
		}
		return err
	}
	others := map[cid.Cid]bool{}
	roots, err := r.index.roots(ctx)
	if err != nil {
		return err
	}
	for _, e := range roots {
		if !e.CID.Equals(root) {
			r.collectBlocks(ctx, e.CID, others)
		}
	}
	mine := map[cid.Cid]bool{}
	r.collectBlocks(ctx, root, mine)
	files, err := r.index.rootFiles(ctx, root)
	if err != nil {
		return err
	}
	b, err := r.index.newBatch(ctx)
	if err != nil {
		return err
	}
	// The root record goes first, so a crash part-way leaves only
	// unreachable entries, never a listed root with missing parts.
	if err := r.index.ds.Delete(ctx, rootKey(root)); err != nil {
		return err
	}
	for id := range files {
		if err := r.index.deleteFile(ctx, b, root, id); err != nil {
			return err
		}
	}
	for c := range mine {
		if !others[c] {
			if err := b.del(blockKey(c)); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

// collectBlocks adds the CIDs of the blocks kept in the repo for root
// (internal nodes, and leaves kept with --copy) to set. A DAG that cannot
// be walked contributes what was reached.
func (r *Repo) collectBlocks(ctx context.Context, root cid.Cid, set map[cid.Cid]bool) {
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		data, err := r.index.ds.Get(ctx, blockKey(c))
		if err == nil {
			set[c] = true
		}
		if errors.Is(err, ds.ErrNotFound) && isRaw(c) {
			return r.store().Get(ctx, c)
		}
		return data, err
	}
	_ = chunker.Leaves(ctx, root, get, func(c cid.Cid) error {
		if ok, _ := r.index.ds.Has(ctx, blockKey(c)); ok {
			set[c] = true
		}
		return nil
	})
}
