package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/p2pshare/p2pshare/chunker"
)

// syncEvery bounds what a kill can lose of a download's resume record:
// pebble keeps unsynced log writes in memory, so the records of leaves in
// place are synced at least this often.
const syncEvery = 200 * time.Millisecond

// ErrNoSpace means the output's filesystem cannot hold what the DAG claims.
var ErrNoSpace = errors.New("not enough space")

// ErrUnsafeOutput means something stands in a partial download that the
// download did not make (a symlink where a folder or file goes, say).
var ErrUnsafeOutput = errors.New("unexpected file in partial download")

// ErrPathTooLong means a path of the DAG, beneath the output folder, is
// longer than the system takes.
var ErrPathTooLong = errors.New("path too long")

// maxPathLen is the longest path the download writes: Linux's PATH_MAX
// less its NUL. (Paths are created beneath the output folder one name at
// a time and could go deeper, but the repo records and serves each file
// by its full path.)
const maxPathLen = 4095

// download owns one get in progress: its output folder (every path is
// opened beneath it through os.Root, never through joined path strings),
// its partial files, its resume record in the index, and the verification
// of what lands there. It is the transfer session's BlockStore for the
// download: leaves it wants are written into its files, other blocks (the
// DAG's internal nodes) go to the repo.
//
// What it holds in memory grows with the DAG's distinct leaves: each
// distinct leaf is written once, where it first appears, and every repeat
// is copied from there by Finish.
type download struct {
	st   *Store
	ix   *index
	root cid.Cid
	dir  *os.Root // the output's parent folder
	// dirPath is dir's path, part and final the names in it of the
	// partial download and of the result.
	dirPath, part, final string
	isDir                bool // the root is a folder (set by Open)
	// busy, if set, is called for each entry Open and Finish work on:
	// making 100k files is progress, not a stalled download.
	busy func()

	mu sync.Mutex
	// rawRoot is the root's block when the root is a raw leaf (a file of
	// one block), verified (see holdRoot): kept here rather than in the
	// repo, where it would be a second copy of the file once Open has
	// written it there.
	rawRoot []byte
	synced  time.Time         // when the index was last synced
	leaf    map[cid.Cid]*slot // each distinct leaf and where it goes first
	order   []cid.Cid         // the distinct leaves in DAG order (have-map order)
	need    uint64            // bytes of distinct leaves
	bytes   uint64            // bytes of distinct leaves in place
}

// slot is where a distinct leaf goes first.
type slot struct {
	file   *partFile
	offset uint64
	size   uint64
	done   bool
}

// partFile is a file of the partial download.
type partFile struct {
	id  string
	rel string // path beneath dir
}

// openDownload opens out's parent folder for a download of root. Nothing
// is created yet.
func openDownload(st *Store, root cid.Cid, out string) (*download, error) {
	dirPath, final := filepath.Split(out)
	dir, err := os.OpenRoot(dirPath)
	if err != nil {
		return nil, fmt.Errorf("opening output folder: %w", err)
	}
	return &download{
		st: st, ix: st.ix, root: root, dir: dir,
		dirPath: filepath.Clean(dirPath), part: partName(final), final: final,
		leaf: map[cid.Cid]*slot{},
	}, nil
}

func (d *download) working() {
	if d.busy != nil {
		d.busy()
	}
}

// Close releases the output folder.
func (d *download) Close() error { return d.dir.Close() }

// tempPath is the partial download's full path.
func (d *download) tempPath() string { return tempPath(filepath.Join(d.dirPath, d.final)) }

// tempPath is where the download to out lies until it is complete.
func tempPath(out string) string {
	return filepath.Join(filepath.Dir(out), partName(filepath.Base(out)))
}

func partName(final string) string { return "." + final + ".p2pshare-part" }

// rel is where the entry at DAG path p lies beneath dir while downloading.
func (d *download) rel(p string) string {
	if p == "" {
		return d.part
	}
	return filepath.FromSlash(path.Join(d.part, p))
}

// Has reports whether a wanted leaf is in place (for the session: what is
// not to be fetched); for other blocks, whether the repo holds them.
func (d *download) Has(ctx context.Context, c cid.Cid) (bool, error) {
	d.mu.Lock()
	s := d.leaf[c]
	done := s != nil && s.done
	d.mu.Unlock()
	if s != nil {
		return done, nil
	}
	if d.heldRoot(c) != nil {
		return true, nil
	}
	return d.st.Has(ctx, c)
}

// heldRoot returns rawRoot if c is the root and rawRoot is held.
func (d *download) heldRoot(c cid.Cid) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.Equals(d.root) {
		return d.rawRoot
	}
	return nil
}

// Get returns a verified block from the download (a raw root its session
// verified) or the repo (whose Get verifies): walks over it pass
// chunker.Verified, and do not hash a raw root of up to a MiB again.
func (d *download) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	if data := d.heldRoot(c); data != nil {
		return data, nil
	}
	return d.st.Get(ctx, c)
}

// Put stores a verified block: a wanted leaf in its slot, anything else
// but a raw root in the repo. A raw root fetched before Open is not kept
// here (Put may not keep data, and a copy of 1 MiB costs a fresh process
// milliseconds): its fetcher hands it to holdRoot.
func (d *download) Put(ctx context.Context, c cid.Cid, data []byte) error {
	d.mu.Lock()
	s := d.leaf[c]
	d.mu.Unlock()
	switch {
	case s != nil:
		return d.WriteLeaf(ctx, c, data)
	case c.Equals(d.root) && isRaw(c):
		return nil
	}
	return d.st.Put(ctx, c, data)
}

// holdRoot keeps data, the verified block of c, if c is the root and a
// raw leaf: Open writes it into its slot, and Get serves it meanwhile.
// The caller gives data up.
func (d *download) holdRoot(c cid.Cid, data []byte) {
	if c.Equals(d.root) && isRaw(c) {
		d.mu.Lock()
		d.rawRoot = data
		d.mu.Unlock()
	}
}

// Stat checks the whole DAG (fetching its structure through get, which
// returns only verified blocks: the download's own, or its session's) and
// that the output's filesystem can hold what it claims.
func (d *download) Stat(ctx context.Context, get chunker.Getter) (chunker.Stats, error) {
	stats, err := chunker.Stat(ctx, d.root, get, chunker.Verified())
	if err != nil {
		return stats, err
	}
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(d.dirPath, &fsst); err != nil {
		return stats, fmt.Errorf("checking free space in %s: %w", d.dirPath, err)
	}
	// What an earlier run left is counted as free: it is reused.
	held, heldEntries := d.partial()
	free := fsst.Bavail*uint64(fsst.Bsize) + held
	if stats.Size > free {
		return stats, fmt.Errorf("%w: needs %s, %s free in %s", ErrNoSpace, FormatBytes(stats.Size), FormatBytes(free), d.dirPath)
	}
	if p := uint64(len(d.tempPath())+1) + stats.Path; stats.Path > 0 && p > maxPathLen {
		return stats, fmt.Errorf("%w: a path in it is %d bytes long beneath %s, over the system's limit of %d", ErrPathTooLong, p, d.dirPath, maxPathLen)
	}
	if fsst.Files > 0 && stats.Entries > fsst.Ffree+heldEntries {
		return stats, fmt.Errorf("%w: needs %d files and folders, %d free in %s", ErrNoSpace, stats.Entries, fsst.Ffree, d.dirPath)
	}
	return stats, nil
}

// partial is the disk space and the entries the partial download of an
// earlier run takes: they are reused.
func (d *download) partial() (bytes, entries uint64) {
	d.walkPartial(func(fi fs.FileInfo) {
		entries++
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			bytes += uint64(st.Blocks) * 512
		}
	})
	return bytes, entries
}

// walkPartial calls fn for everything in the partial download, following
// no symlinks.
func (d *download) walkPartial(fn func(fs.FileInfo)) {
	fs.WalkDir(d.dir.FS(), filepath.ToSlash(d.part), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := e.Info(); err == nil {
			fn(fi)
		}
		return nil
	})
}

// Open creates the partial download, or reopens what an earlier run left
// (resume is true), and records the root as partial. It checks that every
// folder and file on the way is one the download made, re-verifies the
// leaves recorded as done, and copies leaves the repo holds elsewhere.
// The DAG's structure must be in the repo by now (see Stat).
func (d *download) Open(ctx context.Context, out string) error {
	data, err := d.Get(ctx, d.root)
	if err != nil {
		return err
	}
	n, err := chunker.Decode(d.root, data)
	if err != nil {
		return err
	}
	d.isDir = n.Kind == chunker.KindDirectory || n.Kind == chunker.KindHAMTShard
	prev, err := d.ix.root(ctx, d.root)
	resume := err == nil && prev.State == StatePartial && prev.Temp == d.tempPath()
	known := map[string]string{} // temp path -> file ID
	if resume {
		files, err := d.ix.rootFiles(ctx, d.root)
		if err != nil {
			return err
		}
		for id, f := range files {
			known[f.Path] = id
		}
	} else {
		if err := d.disown(ctx); err != nil {
			return err
		}
		if err := d.dir.RemoveAll(d.part); err != nil {
			return fmt.Errorf("clearing an old partial download: %w", err)
		}
	}
	// The partial record is synced with the file records below: a crash
	// before that leaves a partial download no record names, which the
	// next get to this path clears (it does not resume).
	b, err := d.ix.newBatch(ctx)
	if err != nil {
		return err
	}
	if err := b.putJSON(rootKey(d.root), rootRecord{Name: d.final, Dir: d.isDir, Path: out, Temp: d.tempPath(), State: StatePartial, Added: time.Now().UTC()}); err != nil {
		return err
	}
	err = chunker.Walk(ctx, d.root, d.Get, func(e chunker.Entry) error {
		return d.create(ctx, b, e, known)
	}, chunker.Verified())
	if err != nil {
		return err
	}
	if err := b.flush(); err != nil {
		return err
	}
	if err := d.recheck(ctx); err != nil {
		return err
	}
	if err := d.ix.sync(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.synced = time.Now()
	d.mu.Unlock()
	// Leaves this repo holds elsewhere (or a raw root held) are copied,
	// not fetched.
	for _, c := range d.missing() {
		if data, err := d.Get(ctx, c); err == nil {
			if err := d.WriteLeaf(ctx, c, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// disown makes any other root's partial download at this one's path
// unresumable: this download takes the folder over, and a resumed get of
// the other root would keep what this one put there (files of another
// DAG in its result).
func (d *download) disown(ctx context.Context) error {
	roots, err := d.ix.roots(ctx)
	if err != nil {
		return err
	}
	tmp := d.tempPath()
	for _, r := range roots {
		if r.CID.Equals(d.root) || r.State != StatePartial || r.Temp != tmp {
			continue
		}
		r.Temp = ""
		if err := d.ix.putRoot(ctx, r.CID, r.rootRecord); err != nil {
			return err
		}
	}
	return nil
}

// create makes (or, resuming, checks) one entry of the partial download
// and records its files' slots. Symlinks are made by Finish.
func (d *download) create(ctx context.Context, b *batch, e chunker.Entry, known map[string]string) error {
	d.working()
	rel := d.rel(e.Path)
	fi, err := d.dir.Lstat(rel)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	switch e.Kind {
	case chunker.KindDirectory:
		if exists {
			if !fi.IsDir() {
				return fmt.Errorf("%w: %q is not the folder this download made", ErrUnsafeOutput, rel)
			}
			return nil
		}
		if err := d.dir.Mkdir(rel, 0o755); err != nil {
			return fmt.Errorf("creating folder: %w", err)
		}
		return nil
	case chunker.KindSymlink:
		if exists && fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("%w: %q is not the symlink this download made", ErrUnsafeOutput, rel)
		}
		return nil
	}
	if exists && !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %q is not the file this download made", ErrUnsafeOutput, rel)
	}
	full := filepath.Join(d.dirPath, rel)
	id, ok := known[full]
	if ok && !exists {
		// The partial file vanished: forget what we had of it.
		if err := d.ix.deleteFile(ctx, b, d.root, id); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		id = newFileID()
		if err := b.put(rootFileKey(d.root, id), nil); err != nil {
			return err
		}
	}
	if err := b.putJSON(fileKey(id), fileRecord{Path: full, Size: int64(e.Size), Root: d.root.String()}); err != nil {
		return err
	}
	fh, err := d.dir.OpenFile(rel, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("creating output: %w", err)
	}
	err = fh.Truncate(int64(e.Size))
	fh.Close()
	if err != nil {
		return fmt.Errorf("sizing output: %w", err)
	}
	f := &partFile{id: id, rel: rel}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range e.Spans {
		if s.Leaf.Defined() {
			d.leaf[s.Leaf] = &slot{file: f, offset: s.Offset, size: s.Size}
			d.order = append(d.order, s.Leaf)
			d.need += s.Size
		}
	}
	return nil
}

// recheck re-verifies the leaves an earlier run recorded as in place: the
// partial file may have been damaged since. What no longer matches is
// forgotten, to be fetched again.
func (d *download) recheck(ctx context.Context) error {
	byFile := map[string]map[uint64]cid.Cid{}
	for c, s := range d.leaf {
		if byFile[s.file.id] == nil {
			byFile[s.file.id] = map[uint64]cid.Cid{}
		}
		byFile[s.file.id][s.offset] = c
	}
	b, err := d.ix.newBatch(ctx)
	if err != nil {
		return err
	}
	buf := lazyBuf(chunker.MaxBlockSize)
	for id, slots := range byFile {
		offs, err := d.ix.fileOffsets(ctx, id)
		if err != nil {
			return err
		}
		for _, o := range offs {
			c, ok := slots[o]
			if !ok {
				continue
			}
			s := d.leaf[c]
			data, err := d.read(s, buf())
			if err == nil {
				err = chunker.Verify(c, data)
			}
			if err == nil {
				s.done = true
				d.bytes += s.size
				continue
			}
			if err := b.del(locKey(c, id, o)); err != nil {
				return err
			}
			if err := b.del(flocKey(id, o)); err != nil {
				return err
			}
		}
	}
	return b.flush()
}

// lazyBuf returns a func that gives one buffer of n bytes, made on its
// first call: most downloads never need the MiB that recheck and fill
// may use, and a fresh one costs its page faults and a collection.
func lazyBuf(n int) func() []byte {
	var b []byte
	return func() []byte {
		if b == nil {
			b = make([]byte, n)
		}
		return b
	}
}

// read reads a slot's bytes from the partial download into buf.
func (d *download) read(s *slot, buf []byte) ([]byte, error) {
	fh, err := d.dir.OpenFile(s.file.rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	buf = buf[:s.size]
	if _, err := fh.ReadAt(buf, int64(s.offset)); err != nil && !(errors.Is(err, io.EOF) && s.size == 0) {
		return nil, err
	}
	return buf, nil
}

// WriteLeaf puts a verified leaf in its slot and records where it now
// lies, so that it is served from there and a resumed download skips it.
func (d *download) WriteLeaf(ctx context.Context, c cid.Cid, data []byte) error {
	d.mu.Lock()
	s := d.leaf[c]
	done := s == nil || s.done
	d.mu.Unlock()
	if done {
		return nil
	}
	if uint64(len(data)) != s.size {
		return fmt.Errorf("%w: leaf %s is %d bytes, the DAG says %d", chunker.ErrMalformed, c, len(data), s.size)
	}
	fh, err := d.dir.OpenFile(s.file.rel, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("writing %q: %w", s.file.rel, err)
	}
	_, err = fh.WriteAt(data, int64(s.offset))
	if err == nil {
		startWriteback(fh, int64(s.offset), int64(s.size))
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q: %w", s.file.rel, err)
	}
	b, err := d.ix.newBatch(ctx)
	if err != nil {
		return err
	}
	if err := b.putLoc(c, s.file.id, s.offset, s.size); err != nil {
		return err
	}
	if err := b.flush(); err != nil {
		return err
	}
	d.mu.Lock()
	if !s.done {
		s.done = true
		d.bytes += s.size
	}
	due := time.Since(d.synced) >= syncEvery
	if due {
		d.synced = time.Now()
	}
	d.mu.Unlock()
	if due {
		return d.ix.sync(ctx)
	}
	return nil
}

// progress returns the bytes of distinct leaves in place and needed.
func (d *download) progress() (done, need uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bytes, d.need
}

// missing lists the distinct leaves not in place yet.
func (d *download) missing() []cid.Cid {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []cid.Cid
	for c, s := range d.leaf {
		if !s.done {
			out = append(out, c)
		}
	}
	return out
}

// leaves lists every distinct leaf in order of first appearance: the
// order of the have-maps peers exchange.
func (d *download) leaves() []cid.Cid {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.order)
}

// Finish completes the download once every distinct leaf is in place:
// it copies every repeat from where its bytes first appear, then makes
// the symlinks (only now, so nothing is ever written through one), flushes
// the files and folders to disk, moves the result to its final name
// (replacing what is there if force), flushes that move and records the
// result as complete.
func (d *download) Finish(ctx context.Context, force bool, out string) (uint64, error) {
	if m := d.missing(); len(m) > 0 {
		return 0, fmt.Errorf("bug: download of %s ended with %d leaves missing", d.root, len(m))
	}
	var symlinks int
	var size uint64
	var folders []string
	buf := lazyBuf(1 << 20)
	err := chunker.Walk(ctx, d.root, d.Get, func(e chunker.Entry) error {
		d.working()
		switch e.Kind {
		case chunker.KindSymlink:
			symlinks++
			return nil
		case chunker.KindDirectory:
			folders = append(folders, d.rel(e.Path))
			return nil
		case chunker.KindFile:
			size += e.Size
			return d.fill(ctx, e, buf)
		}
		return nil
	}, chunker.Verified())
	if err != nil {
		return 0, err
	}
	if symlinks > 0 {
		err := chunker.Walk(ctx, d.root, d.Get, func(e chunker.Entry) error {
			if e.Kind != chunker.KindSymlink {
				return nil
			}
			d.working()
			rel := d.rel(e.Path)
			if fi, err := d.dir.Lstat(rel); err == nil {
				if fi.Mode()&fs.ModeSymlink == 0 {
					return fmt.Errorf("%w: %q is not the symlink this download made", ErrUnsafeOutput, rel)
				}
				if err := d.dir.Remove(rel); err != nil {
					return err
				}
			}
			if err := d.dir.Symlink(e.Target, rel); err != nil {
				return fmt.Errorf("creating symlink %q: %w", rel, err)
			}
			return nil
		}, chunker.Verified())
		if err != nil {
			return 0, err
		}
	}
	files, err := d.ownFiles(ctx)
	if err != nil {
		return 0, err
	}
	for _, f := range files {
		rel, err := filepath.Rel(d.dirPath, f.Path)
		if err != nil {
			return 0, err
		}
		d.working()
		if err := d.sync(rel); err != nil {
			return 0, fmt.Errorf("flushing %q: %w", rel, err)
		}
	}
	for _, rel := range folders { // their entries
		d.working()
		if err := d.sync(rel); err != nil {
			return 0, fmt.Errorf("flushing %q: %w", rel, err)
		}
	}
	if force {
		if err := d.dir.RemoveAll(d.final); err != nil {
			return 0, fmt.Errorf("replacing %q: %w", out, err)
		}
	}
	if err := d.dir.Rename(d.part, d.final); err != nil {
		return 0, fmt.Errorf("moving download into place: %w", err)
	}
	if err := d.sync("."); err != nil { // the rename, before the record says complete
		return 0, fmt.Errorf("flushing %s: %w", d.dirPath, err)
	}
	b, err := d.ix.newBatch(ctx)
	if err != nil {
		return 0, err
	}
	tmp := d.tempPath()
	for id, f := range files {
		final := out + f.Path[len(tmp):]
		st, err := os.Lstat(final)
		if err != nil {
			return 0, err
		}
		if err := b.putJSON(fileKey(id), fileRecordOf(final, st, d.root)); err != nil {
			return 0, err
		}
	}
	if err := b.flush(); err != nil {
		return 0, err
	}
	return size, d.ix.putRoot(ctx, d.root, rootRecord{Name: d.final, Size: size, Dir: d.isDir, Path: out, State: StateComplete, Added: time.Now().UTC()})
}

// ownFiles lists the file records of this download's partial files: the
// root's records also name the files of any copy of it the repo holds
// elsewhere (a get of a root already held, to another path).
func (d *download) ownFiles(ctx context.Context) (map[string]fileRecord, error) {
	files, err := d.ix.rootFiles(ctx, d.root)
	if err != nil {
		return nil, err
	}
	tmp := d.tempPath()
	for id, f := range files {
		if f.Path != tmp && !strings.HasPrefix(f.Path, tmp+string(filepath.Separator)) {
			delete(files, id)
		}
	}
	return files, nil
}

// fill copies the repeats of a file from where their bytes first appear.
func (d *download) fill(ctx context.Context, e chunker.Entry, buf func() []byte) error {
	var dst *os.File
	defer func() {
		if dst != nil {
			dst.Close()
		}
	}()
	srcs := map[string]*os.File{}
	defer func() {
		for _, f := range srcs {
			f.Close()
		}
	}()
	for _, s := range e.Spans {
		if s.Leaf.Defined() || s.Size == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if dst == nil {
			if dst, err = d.dir.OpenFile(d.rel(e.Path), os.O_RDWR|syscall.O_NOFOLLOW, 0); err != nil {
				return err
			}
		}
		src := dst
		if s.SrcPath != e.Path {
			if src = srcs[s.SrcPath]; src == nil {
				if src, err = d.dir.OpenFile(d.rel(s.SrcPath), os.O_RDONLY|syscall.O_NOFOLLOW, 0); err != nil {
					return err
				}
				srcs[s.SrcPath] = src
			}
		}
		r := io.NewSectionReader(src, int64(s.SrcOffset), int64(s.Size))
		w := io.NewOffsetWriter(dst, int64(s.Offset))
		if _, err := io.CopyBuffer(w, r, buf()); err != nil {
			return fmt.Errorf("writing %q: %w", d.rel(e.Path), err)
		}
	}
	return nil
}

// sync flushes a partial file, or a folder, to disk.
func (d *download) sync(rel string) error {
	fh, err := d.dir.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	err = fh.Sync()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}
