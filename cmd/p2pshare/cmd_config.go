package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/p2pshare/p2pshare/peer"
)

func newConfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "the node's configuration",
		Subcommands: []*cli.Command{{
			Name:      "show",
			Usage:     "print the effective configuration and where each value comes from (flag, env, file, default)",
			UsageText: "p2pshare config show\np2pshare --json config show --listen /ip4/0.0.0.0/tcp/4002",
			// The flags of seed and get, so that it shows what they would use.
			Flags: []cli.Flag{bootstrapFlag, listenFlag(), swarmKeyFlag, noMDNSFlag, noBitswapFlag, noRelayFlag, logLevelFlag},
			Action: func(c *cli.Context) error {
				cfg, err := peer.LoadConfig(c.String("repo"))
				if err != nil {
					return err
				}
				p := newPrinter(c)
				for _, s := range settings(c, cfg) {
					text := fmt.Sprint(s.value)
					if text == "" {
						text = "(none)"
					}
					p.result(configEvent{Type: "config", Key: s.key, Value: s.value, Source: s.source},
						fmt.Sprintf("%-10s %-8s %s", s.key, s.source, text))
				}
				return nil
			},
		}},
	}
}

// setting is one effective value and where it came from.
type setting struct {
	key    string
	value  any
	source string
}

// offSwitch resolves a setting that turns something off: on if the flag
// (or its environment variable) or the file turns it on.
func offSwitch(c *cli.Context, key, flag, env string, file bool) setting {
	switch {
	case c.Bool(flag):
		return setting{key, true, source(c, flag, env)}
	case file:
		return setting{key, true, "file"}
	}
	return setting{key, false, "default"}
}

// settings resolves each setting as the node commands do: a flag beats
// its environment variable, which beats config.json, which beats the
// default; bootstrap peers add up from all three. An empty value counts
// as unset, and no_mdns, no_bitswap and no_relay are on if any source
// turns them on, as for the node.
func settings(c *cli.Context, cfg peer.Config) []setting {
	repo := c.String("repo")
	out := []setting{{"repo", repo, source(c, "repo", "P2PSHARE_REPO")}}

	var boot []string
	var from []string
	if len(cfg.Bootstrap) > 0 {
		boot, from = append(boot, cfg.Bootstrap...), append(from, "file")
	}
	if flags := c.StringSlice("bootstrap"); len(flags) > 0 {
		boot, from = append(boot, flags...), append(from, "flag")
	}
	if env := envBootstrap(); len(env) > 0 {
		boot, from = append(boot, env...), append(from, "env")
	}
	if len(from) == 0 {
		from = []string{"default"}
	}
	out = append(out, setting{"bootstrap", nonNil(boot), strings.Join(from, "+")})

	switch {
	case c.IsSet("listen"):
		out = append(out, setting{"listen", c.StringSlice("listen"), "flag"})
	case len(cfg.Listen) > 0:
		out = append(out, setting{"listen", cfg.Listen, "file"})
	default:
		out = append(out, setting{"listen", peer.DefaultListen, "default"})
	}

	switch {
	case c.String("swarm-key") != "":
		out = append(out, setting{"swarm_key", c.String("swarm-key"), source(c, "swarm-key", "P2PSHARE_SWARM_KEY")})
	case cfg.SwarmKey != "":
		out = append(out, setting{"swarm_key", cfg.SwarmKeyFile(repo), "file"})
	default:
		out = append(out, setting{"swarm_key", "", "default"})
	}

	out = append(out,
		offSwitch(c, "no_mdns", "no-mdns", "P2PSHARE_NO_MDNS", cfg.NoMDNS),
		offSwitch(c, "no_bitswap", "no-bitswap", "P2PSHARE_NO_BITSWAP", cfg.NoBitswap),
		offSwitch(c, "no_relay", "no-relay", "P2PSHARE_NO_RELAY", cfg.NoRelay))

	switch {
	case c.String("log-level") != "":
		out = append(out, setting{"log_level", c.String("log-level"), source(c, "log-level", "P2PSHARE_LOG_LEVEL")})
	case cfg.LogLevel != "":
		out = append(out, setting{"log_level", cfg.LogLevel, "file"})
	default:
		out = append(out, setting{"log_level", "warn", "default"})
	}
	return out
}

// source tells whether a set flag came from the command line or from its
// environment variable (urfave/cli reports both as set), or is the default.
func source(c *cli.Context, name, env string) string {
	if !c.IsSet(name) {
		return "default"
	}
	for _, a := range os.Args[1:] {
		if a == "--" {
			break
		}
		if a == "--"+name || a == "-"+name || strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			return "flag"
		}
	}
	if _, ok := os.LookupEnv(env); ok {
		return "env"
	}
	return "flag"
}

// nonNil makes an empty list print as [] in JSON, not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
