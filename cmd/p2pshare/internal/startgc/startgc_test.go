package startgc

import (
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// child runs test name in a fresh copy of this test binary with GOGC set
// to gogc ("" for unset), where init runs again.
func child(t *testing.T, name, gogc string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^"+name+"$", "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "STARTGC_CHILD=1")
	if gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+gogc)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("child with GOGC=%q: %v\n%s", gogc, err, out)
	}
}

// TestDoneRestores: with no GOGC set, the collector runs at initPercent
// while packages initialise, and Done puts back the default, 100.
func TestDoneRestores(t *testing.T) {
	if os.Getenv("STARTGC_CHILD") == "" {
		child(t, "TestDoneRestores", "")
		return
	}
	if got := debug.SetGCPercent(initPercent); got != initPercent {
		t.Fatalf("GC percentage during init %d, want %d", got, initPercent)
	}
	Done()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percentage after Done %d, want 100", got)
	}
}

// TestGOGCLeftAlone: a GOGC in the environment is never changed, by init
// or by Done.
func TestGOGCLeftAlone(t *testing.T) {
	if os.Getenv("STARTGC_CHILD") == "" {
		child(t, "TestGOGCLeftAlone", "50")
		return
	}
	if got := debug.SetGCPercent(50); got != 50 {
		t.Fatalf("GC percentage with GOGC=50 during init: %d", got)
	}
	Done()
	if got := debug.SetGCPercent(50); got != 50 {
		t.Fatalf("GC percentage with GOGC=50 after Done: %d", got)
	}
}
