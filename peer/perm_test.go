package peer

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAPISocketPerm: the API socket is 0600 in a repo folder of 0700, an
// existing looser repo folder being tightened.
func TestAPISocketPerm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("repo folder after Open: %v (%v), want 0700", st.Mode().Perm(), err)
	}
	os.Chmod(dir, 0o755) // loosened while open: ServeAPI tightens again
	ctx, cancel := context.WithCancel(context.Background())
	n, err := Start(ctx, r, NodeOptions{Listen: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	done := make(chan error, 1)
	go func() { done <- n.ServeAPI(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", r.APISocket()); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("API socket never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := os.Stat(r.APISocket())
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v (%v), want a 0600 socket", st.Mode(), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("repo folder mode %v while serving, want 0700", st.Mode().Perm())
	}
}

// TestRepoPerm: Init makes new and existing repo folders 0700, but refuses
// to close a folder that holds other things.
func TestRepoPerm(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "fresh")
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	other := filepath.Join(base, "other")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644)
	for _, dir := range []string{fresh, empty} {
		if _, err := Init(dir); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", dir, st.Mode().Perm())
		}
	}
	if _, err := Init(other); err == nil || !strings.Contains(err.Error(), "folder of its own") {
		t.Fatalf("Init of a folder with other content: %v", err)
	}
	if st, _ := os.Stat(other); st.Mode().Perm() != 0o755 {
		t.Errorf("a folder with other content was changed to %v", st.Mode().Perm())
	}
}
