package bbolt

/*
#include "deadbolt.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// The limits of bbolt's API (deadbolt's are the same).
const (
	MaxKeySize   = 32768
	MaxValueSize = (1 << 31) - 2
)

// DefaultFillPercent is accepted for compatibility (deadbolt splits pages by size).
const DefaultFillPercent = 0.5

// Defaults of DB.MaxBatchSize, DB.MaxBatchDelay and DB.AllocSize.
const (
	DefaultMaxBatchSize  int = 1000
	DefaultMaxBatchDelay     = 10 * time.Millisecond
	DefaultAllocSize         = 16 * 1024 * 1024
)

// IgnoreNoSync: bbolt ignores NoSync on OpenBSD; deadbolt honours it everywhere.
const IgnoreNoSync = false

// FreelistType is accepted for compatibility; deadbolt has one free-space representation.
type FreelistType string

// The freelist types of bbolt.
const (
	FreelistArrayType = FreelistType("array")
	FreelistMapType   = FreelistType("hashmap")
)

// TestFreelistType is the environment variable bbolt's tests read to choose a freelist.
const TestFreelistType = "TEST_FREELIST_TYPE"

// Options of Open. Timeout, ReadOnly, PageSize and NoSync are honoured; the others are
// accepted and ignored (see the package documentation).
type Options struct {
	Timeout         time.Duration
	NoGrowSync      bool
	NoFreelistSync  bool
	FreelistType    FreelistType
	ReadOnly        bool
	MmapFlags       int
	InitialMmapSize int
	PageSize        int
	NoSync          bool
	OpenFile        func(string, int, os.FileMode) (*os.File, error)
	Mlock           bool
}

// DefaultOptions are the options used when Open gets nil.
var DefaultOptions = &Options{
	Timeout:      0,
	NoGrowSync:   false,
	FreelistType: FreelistArrayType,
}

// Info describes the database: Data is 0 (the mapping is the engine's, not exposed).
type Info struct {
	Data     uintptr
	PageSize int
}

// DB is an open database file.
type DB struct {
	// StrictMode runs Check after every commit and panics on a problem.
	StrictMode bool
	// NoSync is Options.NoSync; changing it after Open has no effect (see the package
	// documentation).
	NoSync bool
	// Accepted and ignored (see the package documentation).
	NoFreelistSync bool
	FreelistType   FreelistType
	NoGrowSync     bool
	MmapFlags      int
	AllocSize      int
	Mlock          bool
	// MaxBatchSize and MaxBatchDelay bound the batches of Batch.
	MaxBatchSize  int
	MaxBatchDelay time.Duration

	path     string
	h        C.uint64_t
	readOnly bool
	pageSize int

	// mu is held shared by every transaction and exclusively by Close, so Close waits for
	// the open transactions, as bbolt's does.
	mu     sync.RWMutex
	opened bool

	batchMu sync.Mutex
	batch   *batch

	statlock sync.Mutex
	stats    Stats
}

// Open opens (creating if missing) the deadbolt database at path. A bbolt file is refused
// with a *BoltFileError and left untouched.
func Open(path string, mode os.FileMode, options *Options) (*DB, error) {
	if options == nil {
		options = DefaultOptions
	}
	db := &DB{
		path:           path,
		readOnly:       options.ReadOnly,
		NoSync:         options.NoSync,
		NoGrowSync:     options.NoGrowSync,
		NoFreelistSync: options.NoFreelistSync,
		FreelistType:   options.FreelistType,
		MmapFlags:      options.MmapFlags,
		Mlock:          options.Mlock,
		MaxBatchSize:   DefaultMaxBatchSize,
		MaxBatchDelay:  DefaultMaxBatchDelay,
		AllocSize:      DefaultAllocSize,
	}
	_, statErr := os.Stat(path)
	var o C.DeadboltOptions
	if options.PageSize > 0 {
		o.page_size = C.uint32_t(options.PageSize)
	}
	if options.NoSync {
		o.no_sync = 1
	}
	if options.ReadOnly {
		o.read_only = 1
	}
	if options.Timeout > 0 {
		o.lock_timeout_ns = C.uint64_t(options.Timeout)
	}
	f := newFrame()
	defer freeFrame(f)
	p := []byte(path)
	rc := C.deadbolt_open(ptr(p), C.size_t(len(p)), &o, &f.u, &f.err)
	runtime.KeepAlive(p)
	if rc != C.DEADBOLT_OK {
		if rc == C.DEADBOLT_ERR_BOLT_FILE {
			msg := C.GoStringN((*C.char)(unsafe.Pointer(f.err.message)), C.int(f.err.message_len))
			C.deadbolt_error_clear(&f.err)
			return nil, &BoltFileError{Path: path, Message: msg}
		}
		err := take(f, rc, ErrDatabaseReadOnly)
		// bbolt's own test (and code that matches its text) expects this message for a file
		// shorter than two pages; the engine's precise diagnosis stays in the chain.
		if info, e := os.Stat(path); e == nil && info.Size() < 2*int64(os.Getpagesize()) && errors.Is(err, ErrCorrupted) {
			return nil, &FileTooSmallError{Size: info.Size(), Err: err}
		}
		return nil, err
	}
	db.h = f.u
	db.opened = true
	if os.IsNotExist(statErr) && !options.ReadOnly {
		_ = os.Chmod(path, mode)
	}
	var st C.DeadboltStats
	if C.deadbolt_stats(db.h, &st, &f.err) == C.DEADBOLT_OK {
		db.pageSize = int(st.page_size)
	} else {
		C.deadbolt_error_clear(&f.err)
	}
	return db, nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// GoString is the Go-syntax representation.
func (db *DB) GoString() string { return fmt.Sprintf("bolt.DB{path:%q}", db.path) }

// String is the string representation.
func (db *DB) String() string { return fmt.Sprintf("DB<%q>", db.path) }

// IsReadOnly reports whether the database was opened read-only.
func (db *DB) IsReadOnly() bool { return db.readOnly }

// Info is the page size (Data is 0).
func (db *DB) Info() *Info { return &Info{Data: 0, PageSize: db.pageSize} }

// Close waits for the open transactions, makes every commit durable and releases the file.
// Closing a closed database is not an error.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if !db.opened {
		return nil
	}
	db.opened = false
	f := newFrame()
	defer freeFrame(f)
	if rc := C.deadbolt_close(db.h, &f.err); rc != C.DEADBOLT_OK {
		return take(f, rc, ErrDatabaseReadOnly)
	}
	return nil
}

// Sync makes every commit durable (useful with NoSync).
func (db *DB) Sync() error {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if !db.opened {
		return ErrDatabaseNotOpen
	}
	f := newFrame()
	defer freeFrame(f)
	if rc := C.deadbolt_sync(db.h, &f.err); rc != C.DEADBOLT_OK {
		return take(f, rc, ErrDatabaseReadOnly)
	}
	return nil
}

// Begin starts a transaction. A write transaction waits for the current writer; it locks
// the calling goroutine to its OS thread until Commit or Rollback (the engine's writer lock
// belongs to a thread), so it must be finished by the goroutine that began it. Every
// transaction must be closed, or Close waits forever (as in bbolt).
func (db *DB) Begin(writable bool) (*Tx, error) {
	db.mu.RLock()
	if !db.opened {
		db.mu.RUnlock()
		return nil, ErrDatabaseNotOpen
	}
	if writable && db.readOnly {
		db.mu.RUnlock()
		return nil, ErrDatabaseReadOnly
	}
	if writable {
		runtime.LockOSThread()
	}
	f := newFrame()
	w := C.int32_t(0)
	if writable {
		w = 1
	}
	if rc := C.deadbolt_begin(db.h, w, &f.u, &f.err); rc != C.DEADBOLT_OK {
		err := take(f, rc, ErrDatabaseReadOnly)
		freeFrame(f)
		if writable {
			runtime.UnlockOSThread()
		}
		db.mu.RUnlock()
		return nil, err
	}
	t := &Tx{db: db, h: f.u, f: f, writable: writable}
	t.root = &Bucket{tx: t, h: C.DEADBOLT_ROOT, FillPercent: DefaultFillPercent}
	if !writable {
		db.statlock.Lock()
		db.stats.TxN++
		db.stats.OpenTxN++
		db.statlock.Unlock()
	}
	return t, nil
}

// Update runs fn in a write transaction: commit if it returns nil, roll back on an error or
// a panic (which is re-raised).
func (db *DB) Update(fn func(*Tx) error) error {
	t, err := db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if !t.closed {
			t.rollback()
		}
	}()
	t.managed = true
	err = fn(t)
	t.managed = false
	if err != nil {
		_ = t.Rollback()
		return err
	}
	return t.Commit()
}

// View runs fn in a read transaction. Damage the transaction met where bbolt's API has no
// error (Get, cursor moves) is returned when fn returns nil.
func (db *DB) View(fn func(*Tx) error) error {
	t, err := db.Begin(false)
	if err != nil {
		return err
	}
	defer func() {
		if !t.closed {
			t.rollback()
		}
	}()
	t.managed = true
	err = fn(t)
	t.managed = false
	damage := t.err
	if rerr := t.Rollback(); err == nil {
		err = rerr
	}
	if err == nil {
		err = damage
	}
	return err
}

// Stats are the database's counters.
func (db *DB) Stats() Stats {
	db.statlock.Lock()
	s := db.stats
	db.statlock.Unlock()
	db.mu.RLock()
	defer db.mu.RUnlock()
	if !db.opened {
		return s
	}
	f := newFrame()
	defer freeFrame(f)
	var st C.DeadboltStats
	if C.deadbolt_stats(db.h, &st, &f.err) == C.DEADBOLT_OK {
		s.FreePageN = int(st.free_pages)
		s.PendingPageN = int(st.pending_pages)
		s.FreeAlloc = int(st.free_pages+st.pending_pages) * db.pageSize
	} else {
		C.deadbolt_error_clear(&f.err)
	}
	return s
}

// Stats are database counters (the page counts are deadbolt's).
type Stats struct {
	FreePageN     int
	PendingPageN  int
	FreeAlloc     int
	FreelistInuse int
	TxN           int
	OpenTxN       int
	TxStats       TxStats
}

// Sub is the difference s - other (for the cumulative counters).
func (s *Stats) Sub(other *Stats) Stats {
	if other == nil {
		return *s
	}
	var diff Stats
	diff.FreePageN = s.FreePageN
	diff.PendingPageN = s.PendingPageN
	diff.FreeAlloc = s.FreeAlloc
	diff.FreelistInuse = s.FreelistInuse
	diff.TxN = s.TxN - other.TxN
	diff.TxStats = s.TxStats.Sub(&other.TxStats)
	return diff
}
