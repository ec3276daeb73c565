package peer

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/crypto"
	libp2ppeer "github.com/libp2p/go-libp2p/core/peer"
)

// Files and folders inside a repo.
const (
	keyFile       = "identity.key"
	configFile    = "config.json"
	datastoreDir  = "datastore"
	apiSocketFile = "api.sock"
)

// ErrRepoLocked is returned by Open when another process holds the repo's
// datastore (usually a running seed node, which the CLI should talk to
// through its API instead).
var ErrRepoLocked = errors.New("repo is in use by another p2pshare process")

// ErrNoRepo is returned by Open when dir holds no repo and create is false.
var ErrNoRepo = errors.New("no p2pshare repo")

// Config is the repo's user-editable configuration (config.json).
type Config struct {
	// Listen lists the multiaddrs a seed listens on when --listen is not given.
	Listen []string `json:"listen,omitempty"`
	// Bootstrap lists multiaddrs (with /p2p/ID) of peers to join through.
	Bootstrap []string `json:"bootstrap,omitempty"`
	// SwarmKey is the path of a swarm key file (/key/swarm/psk/1.0.0/, as
	// Kubo's swarm.key) that makes the node a member of that private swarm
	// when --swarm-key and P2PSHARE_SWARM_KEY are not given. A relative
	// path is relative to the repo folder.
	SwarmKey string `json:"swarm_key,omitempty"`
	// NoMDNS turns off finding peers on the local network by mDNS, as
	// --no-mdns does.
	NoMDNS bool `json:"no_mdns,omitempty"`
	// NoBitswap turns off serving blocks over Bitswap, as seed's
	// --no-bitswap does.
	NoBitswap bool `json:"no_bitswap,omitempty"`
	// NoRelay turns off the relay service for peers behind NAT, as seed's
	// --no-relay does.
	NoRelay bool `json:"no_relay,omitempty"`
	// LogLevel is the level of the node's log on stderr when --log-level
	// is not given: debug, info, warn (the default) or error.
	LogLevel string `json:"log_level,omitempty"`
}

// DefaultListen is the seed's default listen addresses (CLI.md).
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// Repo is a node's on-disk state: identity key, config and the index in an
// embedded pebble datastore. A Repo's datastore is exclusive to one process.
type Repo struct {
	Dir    string
	Key    crypto.PrivKey
	ID     libp2ppeer.ID
	Config Config
	index  *index
	st     *Store
	ds     *pebbleds.Datastore
}

// Init creates the identity and config in dir if they are absent and
// returns the peer ID. It does not open the datastore.
//
// The repo folder is made private (mode 0700), an existing one tightened:
// it holds the identity key and the local API socket, through which
// whoever can connect commands the node, so nobody but its owner may
// enter it.
func Init(dir string) (libp2ppeer.ID, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating repo %s: %w", dir, err)
	}
	if err := tighten(dir); err != nil {
		return "", err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, keyFile))
	if err != nil {
		return "", err
	}
	cfgPath := filepath.Join(dir, configFile)
	if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileAtomic(cfgPath, []byte("{}\n"), 0o600); err != nil {
			return "", fmt.Errorf("writing config: %w", err)
		}
	}
	return libp2ppeer.IDFromPrivateKey(key)
}

// Open opens the repo in dir, creating it first if needed.
func Open(dir string) (*Repo, error) {
	r, err := openFiles(dir)
	if err != nil {
		return nil, err
	}
	if err := r.openDatastore(); err != nil {
		return nil, err
	}
	return r, nil
}

// openFiles reads the identity and config of the repo in dir, creating
// them first if needed; its datastore is not open yet (openDatastore).
func openFiles(dir string) (*Repo, error) {
	if _, err := Init(dir); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	id, err := libp2ppeer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	return &Repo{Dir: dir, Key: key, ID: id, Config: cfg}, nil
}

// openDatastore opens the repo's datastore, and the index and store on it.
func (r *Repo) openDatastore() error {
	d, err := pebbleds.NewDatastore(filepath.Join(r.Dir, datastoreDir))
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("opening %s: %w", r.Dir, ErrRepoLocked)
		}
		return fmt.Errorf("opening datastore in %s: %w", r.Dir, err)
	}
	r.ds, r.index = d, &index{ds: d}
	r.st = newStore(r.index)
	return nil
}

// LoadConfig reads the config of the repo in dir. A repo without a
// config (or no repo at all) has the zero Config.
func LoadConfig(dir string) (Config, error) {
	var cfg Config
	path := filepath.Join(dir, configFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("parsing %s: %w", path, err)
	}
	return cfg, nil
}

// SwarmKeyFile is the config's swarm_key made absolute against the repo
// folder dir ("" if unset).
func (c Config) SwarmKeyFile(dir string) string {
	if c.SwarmKey == "" || filepath.IsAbs(c.SwarmKey) {
		return c.SwarmKey
	}
	return filepath.Join(dir, c.SwarmKey)
}

// tighten makes the repo folder dir accessible to its owner only.
func tighten(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("repo %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("repo %s is not a folder", dir)
	}
	if st.Mode().Perm() == 0o700 {
		return nil
	}
	// Tighten only a folder of p2pshare's own: a --repo that names a
	// folder with other things in it (the home folder, /tmp) is a mistake
	// to report, not a folder to close.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("repo %s: %w", dir, err)
	}
	ours := len(ents) == 0
	for _, e := range ents {
		if e.Name() == keyFile || e.Name() == configFile {
			ours = true
		}
	}
	if !ours {
		return fmt.Errorf("repo %s is a folder with other content and mode %v: give p2pshare a folder of its own (--repo)", dir, st.Mode().Perm())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("making repo %s private (mode 0700): %w", dir, err)
	}
	return nil
}

// Close closes the datastore.
func (r *Repo) Close() error { return r.ds.Close() }

func (r *Repo) store() *Store { return r.st }

// APISocket is the path of the local API socket of a seed using this repo.
func (r *Repo) APISocket() string { return APISocket(r.Dir) }

// APISocket is the path of the local API socket of a seed using the repo in dir.
func APISocket(dir string) string { return filepath.Join(dir, apiSocketFile) }

func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("reading identity %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating identity: %w", err)
	}
	raw, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, raw, 0o600); err != nil {
		return nil, fmt.Errorf("writing identity: %w", err)
	}
	return k, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
