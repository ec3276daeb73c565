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
func Init(dir string) (libp2ppeer.ID, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating repo %s: %w", dir, err)
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
	var cfg Config
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(dir, configFile), err)
	}
	d, err := pebbleds.NewDatastore(filepath.Join(dir, datastoreDir))
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("opening %s: %w", dir, ErrRepoLocked)
		}
		return nil, fmt.Errorf("opening datastore in %s: %w", dir, err)
	}
	ix := &index{ds: d}
	return &Repo{Dir: dir, Key: key, ID: id, Config: cfg, ds: d, index: ix, st: newStore(ix)}, nil
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
