package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigShow: config show names, for each setting, the value a node
// would use and where it came from: a flag beats the environment, which
// beats config.json, which beats the default.
func TestConfigShow(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	if r := run(t, "--repo", repo, "init"); r.code != 0 {
		t.Fatal(r)
	}
	const boot = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWKQakZYyTYt7mMDV2Bdm4zGrGvtvfcXHBU6QvM7PLKibg"
	os.WriteFile(filepath.Join(repo, "config.json"), []byte(`{"listen": ["/ip4/0.0.0.0/tcp/4009"], "log_level": "error", "no_mdns": true, "no_relay": true, "bootstrap": ["`+boot+`"]}`), 0o600)

	show := func(env []string, args ...string) map[string]configEvent {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--repo", repo, "--json", "config", "show"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		r := runCmd(t, cmd)
		if r.code != 0 {
			t.Fatalf("config show %v: %+v", args, r)
		}
		out := map[string]configEvent{}
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var ev configEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != "config" {
				t.Fatalf("config show printed %q", l)
			}
			out[ev.Key] = ev
		}
		return out
	}
	want := func(got map[string]configEvent, key, value, source string) {
		t.Helper()
		v, _ := json.Marshal(got[key].Value)
		if string(v) != value || got[key].Source != source {
			t.Errorf("%s = %s from %q, want %s from %q", key, v, got[key].Source, value, source)
		}
	}

	file := show([]string{"P2PSHARE_LOG_LEVEL=", "P2PSHARE_NO_MDNS=", "P2PSHARE_NO_BITSWAP=", "P2PSHARE_NO_RELAY=", "P2PSHARE_BOOTSTRAP="})
	want(file, "listen", `["/ip4/0.0.0.0/tcp/4009"]`, "file")
	want(file, "log_level", `"error"`, "file")
	want(file, "no_mdns", `true`, "file")
	want(file, "no_relay", `true`, "file")
	want(file, "no_bitswap", `false`, "default")
	want(file, "bootstrap", `["`+boot+`"]`, "file")
	want(file, "swarm_key", `""`, "default")
	want(file, "repo", `"`+repo+`"`, "flag")

	env := show([]string{"P2PSHARE_LOG_LEVEL=info", "P2PSHARE_NO_BITSWAP=true"})
	want(env, "log_level", `"info"`, "env")
	want(env, "no_bitswap", `true`, "env")

	flag := show([]string{"P2PSHARE_LOG_LEVEL=info"}, "--log-level", "debug", "--listen", "/ip4/127.0.0.1/tcp/5", "--no-bitswap")
	want(flag, "no_bitswap", `true`, "flag")
	want(flag, "log_level", `"debug"`, "flag")
	want(flag, "listen", `["/ip4/127.0.0.1/tcp/5"]`, "flag")

	os.Remove(filepath.Join(repo, "config.json"))
	def := show(nil)
	want(def, "listen", `["/ip4/0.0.0.0/tcp/4001","/ip4/0.0.0.0/udp/4001/quic-v1"]`, "default")
	want(def, "log_level", `"warn"`, "default")
}
