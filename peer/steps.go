package peer

import (
	"log/slog"
	"time"
)

// processStart is when this package was initialised: after the libraries
// it imports, a few tens of milliseconds after the process started
// (GODEBUG=inittrace=1 shows what comes before).
var processStart = time.Now()

// Step logs, at debug level, that a step of a node's life is done, with
// the milliseconds since the process started: where a short-lived get
// spends its time (p2pshare --log-level debug get ...).
func Step(log *slog.Logger, step string) {
	if log == nil {
		return
	}
	log.Debug("step", "step", step, "ms", float64(time.Since(processStart).Microseconds())/1000)
}
