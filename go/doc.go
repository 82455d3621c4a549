// Package bbolt is a drop-in replacement for go.etcd.io/bbolt (1.3.6's API) backed by the
// deadbolt engine through its C ABI (capi/ in the deadbolt repository). A Go project adopts
// it with one line in its go.mod:
//
//	replace go.etcd.io/bbolt => /path/to/deadbolt/go
//
// and builds the engine once with `cargo build --release -p deadbolt-capi` (cgo links
// ../target/release/libdeadbolt_capi.a; set CGO_LDFLAGS=-L<dir> for another target directory).
//
// What differs from bbolt:
//
//   - The file format is deadbolt's (checksummed pages whose checksums also live in their
//     parents). Opening a bbolt file returns a *BoltFileError naming it (errors.Is
//     ErrBoltFormat and ErrInvalid) and never touches it; ImportBolt converts one and
//     CheckBolt diagnoses one, with deadbolt's hardened bbolt reader.
//   - Damage is an error, never a panic, a hang or unbounded memory: a read that meets a page
//     that fails verification returns (or, where bbolt's signature has no error, as in Get and
//     the cursor moves, records) an *Error whose errors.Is(err, ErrCorrupted) is true. Get and
//     the cursor methods cannot return errors in bbolt's API: on damage they return nil (as if
//     the key were absent) and the transaction remembers the error: Tx.Err reports it,
//     View returns it, and Commit refuses to commit a transaction that met damage.
//   - Page-layout introspection is deadbolt's, not bbolt's: Tx.Page returns an error (there
//     are no bbolt pages), Stats and BucketStats count deadbolt's pages, Info().Data is 0.
//     FreelistType, NoFreelistSync, NoGrowSync, MmapFlags, InitialMmapSize, Mlock and
//     AllocSize are accepted and ignored (deadbolt persists free space as small delta
//     records and grows the file by an eighth). Commits without a
//     sync are chosen with Options.NoSync at Open; setting the DB.NoSync field afterwards
//     has no effect (the engine fixes it when the file is opened).
//   - A write transaction locks its goroutine to its OS thread until Commit or Rollback (the
//     engine's writer lock belongs to a thread): it must be finished by the goroutine that
//     began it. A second Begin(true) in that goroutine is an error, not a deadlock.
//   - Batch gathers concurrent callers into one transaction like bbolt's (same contract: the
//     function may run more than once).
//
// Values returned by Get and by cursors follow bbolt's rule: they are valid only until the
// transaction ends. In a read transaction they are zero-copy views of the memory-mapped file;
// in a write transaction they are copies. Keeping a view past the end of its transaction is a
// bug, as in bbolt: the bytes may change when the pages are reused, and the mapping may be gone
// after the file grows or shrinks (reading it then faults). Copy what you keep.
package bbolt
