// Package startgc lets the collector run less often while the program's
// packages initialise, and puts it back with Done.
//
// Package initialisation makes garbage that is dead by the time main
// runs: boxo's gateway alone parses its HTML templates in init, about
// 2.8 MB, which at the default GOGC of 100 on the initial 4 MB heap goal
// costs several collections (about 3 ms of a 14 ms start here). This
// package imports only runtime/debug, so it is initialised before any
// package that imports more (Go initialises a ready package with the
// lexically smallest path first, and one needing html/template is ready
// only after it), and raises the GC percentage until main calls Done.
// A GOGC set in the environment is left alone.
package startgc

import (
	"os"
	"runtime/debug"
)

// initPercent is the GC percentage while packages initialise.
const initPercent = 800

// prev is the percentage before init raised it; -2 if init left it alone.
var prev = -2

func init() {
	if _, set := os.LookupEnv("GOGC"); !set {
		prev = debug.SetGCPercent(initPercent)
	}
}

// Done restores the GC percentage that was in force before
// initialisation; call it first thing in main.
func Done() {
	if prev != -2 {
		debug.SetGCPercent(prev)
	}
}
