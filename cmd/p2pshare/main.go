// Command p2pshare is a peer-to-peer file sharing tool: it adds files and
// folders as IPFS-compatible content-addressed chunks, finds peers through a
// Kademlia DHT and fetches from many peers at once, verifying every byte.
//
// The command-line contract (commands, flags, output, exit codes) is
// documented in README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/cmd/p2pshare/internal/startgc"
	"github.com/p2pshare/p2pshare/peer"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// usageError marks an error in how the command was called (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	startgc.Done()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp()
	err := app.RunContext(ctx, interspersed(app, os.Args))
	code := exitCode(ctx, err)
	if err != nil && code != exitOK {
		printError(os.Stderr, jsonOutput(os.Args), err, code)
	}
	os.Exit(code)
}

// exitCode maps an error to the documented exit status.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), peer.IsUsage(err):
		return exitUsage
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	default:
		return exitFailed
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "p2pshare",
		Usage: "share files peer to peer, verified chunk by chunk",
		UsageText: `p2pshare share report.pdf photos/   (then elsewhere: p2pshare get p2ps2...)
p2pshare add report.pdf photos/
p2pshare seed --listen /ip4/0.0.0.0/tcp/4001
p2pshare get bafy... -o report.pdf --bootstrap /ip4/192.0.2.1/tcp/4001/p2p/12D3Koo...`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "repo", Usage: "the node's repo (identity, config, index)", EnvVars: []string{"P2PSHARE_REPO"}, Value: defaultRepo()},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output: one JSON object per line"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the essential result"},
			logLevelFlag,
		},
		Commands: []*cli.Command{
			newInitCommand(), newIDCommand(), newAddCommand(), newGetCommand(),
			newSeedCommand(), newLsCommand(), newRmCommand(), newStatusCommand(),
			newSwarmKeyCommand(), newShareCommand(), newTicketCommand(), newPeersCommand(),
			newExportCommand(), newImportCommand(), newConfigCommand(),
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
		CommandNotFound: func(c *cli.Context, name string) {
			printError(os.Stderr, c.Bool("json"), usagef("unknown command %q (see p2pshare --help)", name), exitUsage)
			os.Exit(exitUsage)
		},
		HideHelpCommand: true,
	}
	setUsage(app.Commands...)
	return app
}

// interspersed moves a command's flags before its arguments, so that
// `get CID -o PATH` works as CLI.md shows (urfave/cli stops parsing flags
// at the first argument).
func interspersed(app *cli.App, args []string) []string {
	takesValue := func(flags []cli.Flag, name string) bool {
		for _, f := range flags {
			for _, n := range f.Names() {
				if n == name {
					_, isBool := f.(*cli.BoolFlag)
					return !isBool
				}
			}
		}
		return false
	}
	// Skip the global flags to find the command.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		name := strings.TrimLeft(args[i], "-")
		if !strings.Contains(name, "=") && takesValue(app.Flags, name) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil || len(cmd.Subcommands) > 0 {
		// A command of subcommands (config show) parses its own.
		return args
	}
	out := append([]string{}, args[:i+1]...)
	var pos []string
	rest := args[i+1:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		switch {
		case a == "--":
			pos = append(pos, rest[k:]...)
			k = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			out = append(out, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue(cmd.Flags, name) && k+1 < len(rest) {
				k++
				out = append(out, rest[k])
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(out, pos...)
}

func defaultRepo() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".p2pshare"
	}
	return home + "/.p2pshare"
}

// jsonOutput reports whether --json was given, for errors that happen
// before or outside flag parsing.
func jsonOutput(args []string) bool {
	for _, a := range args[1:] {
		if a == "--json" || a == "-json" {
			return true
		}
	}
	return false
}

// setUsage makes flag errors of a subcommand exit with status 2.
func setUsage(cmds ...*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	}
}

func init() {
	cli.HelpFlag = &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help"}
}
