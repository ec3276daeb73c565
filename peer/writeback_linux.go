package peer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a range of f to disk
// now, without waiting: a download's final fsync then has little left to
// do, instead of the whole file (the kernel otherwise holds dirty pages
// for up to 30 s).
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
