// Package chunker turns byte streams, files and folders into content-addressed
// UnixFS DAGs and reads such DAGs back.
//
// It owns splitting (fixed-size chunks, or content-defined buzhash chunks),
// the dag-pb/UnixFS encoding of file, directory, HAMT-shard and symlink
// nodes, CIDs, and decoding and walking DAGs. It knows nothing of the
// network, the repo or logging: what a build produces goes to a Sink, and
// walking a DAG fetches blocks through a Getter.
//
// The default options follow the IPIP-499 unixfs-v1-2025 profile: CIDv1,
// sha2-256, raw leaves, 1 MiB chunks, balanced DAG of at most 1024 links
// per node, directories HAMT-sharded (fanout 256) once their dag-pb block
// would exceed 256 KiB. The same bytes give the same root CID as `ipfs add`
// in a Kubo repo initialised with `--profile=unixfs-v1-2025`.
//
// Leaves are hashed on GOMAXPROCS goroutines while the next chunks are read;
// memory stays a small multiple of the chunk size whatever the file size.
package chunker
