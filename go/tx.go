package bbolt

/*
#include <stdlib.h>
#include "deadbolt.h"

int32_t dbgoWrite(void *user, uint8_t *data, size_t len);

static int32_t dbgo_write_to(uint64_t tx, void *user, uint64_t *out, DeadboltError *err) {
	return deadbolt_tx_write_to(tx, (DeadboltWriteFn)dbgoWrite, user, out, err);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/cgo"
	"time"
	"unsafe"
)

// Tx is a read or write transaction. It must be used by one goroutine at a time, and a write
// transaction by the goroutine that began it.
type Tx struct {
	// WriteFlag is accepted for compatibility (copies use the engine's mapping).
	WriteFlag int

	db             *DB
	h              C.uint64_t
	f              *frame
	writable       bool
	managed        bool
	closed         bool
	root           *Bucket
	commitHandlers []func()
	// err is the first damage met by a call whose bbolt signature has no error.
	err error
	// fbuf is the cursors' fetch buffer (C memory for stepMax entries, freed at the end),
	// fowner the cursor whose entries it holds.
	fbuf   *C.DeadboltEntry
	fowner *Cursor
	stats  TxStats
}

// TxStats are transaction counters (deadbolt does not count bbolt's node operations).
type TxStats struct {
	PageCount     int
	PageAlloc     int
	CursorCount   int
	NodeCount     int
	NodeDeref     int
	Rebalance     int
	RebalanceTime time.Duration
	Split         int
	Spill         int
	SpillTime     time.Duration
	Write         int
	WriteTime     time.Duration
}

// Sub is the difference s - other.
func (s *TxStats) Sub(other *TxStats) TxStats {
	var d TxStats
	d.PageCount = s.PageCount - other.PageCount
	d.PageAlloc = s.PageAlloc - other.PageAlloc
	d.CursorCount = s.CursorCount - other.CursorCount
	d.NodeCount = s.NodeCount - other.NodeCount
	d.NodeDeref = s.NodeDeref - other.NodeDeref
	d.Rebalance = s.Rebalance - other.Rebalance
	d.RebalanceTime = s.RebalanceTime - other.RebalanceTime
	d.Split = s.Split - other.Split
	d.Spill = s.Spill - other.Spill
	d.SpillTime = s.SpillTime - other.SpillTime
	d.Write = s.Write - other.Write
	d.WriteTime = s.WriteTime - other.WriteTime
	return d
}

// PageInfo describes a page (see Tx.Page).
type PageInfo struct {
	ID            int
	Type          string
	Count         int
	OverflowCount int
}

// noteDamage records the first error met where the API cannot return one.
func (tx *Tx) noteDamage(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Err is the first damage this transaction met in a call that cannot return an error (Get,
// Bucket, cursor moves), or nil. Commit refuses to commit after one.
func (tx *Tx) Err() error { return tx.err }

// ID is the transaction's id (a write transaction: the id it commits as).
func (tx *Tx) ID() int {
	info, err := tx.info()
	if err != nil {
		return 0
	}
	if tx.writable {
		return int(info.id) + 1
	}
	return int(info.id)
}

func (tx *Tx) info() (C.DeadboltTxInfo, error) {
	if tx.closed {
		return C.DeadboltTxInfo{}, ErrTxClosed
	}
	if rc := C.deadbolt_tx_info(tx.h, &tx.f.info, &tx.f.err); rc != C.DEADBOLT_OK {
		return C.DeadboltTxInfo{}, take(tx.f, rc, ErrTxNotWritable)
	}
	return tx.f.info, nil
}

// DB is the transaction's database.
func (tx *Tx) DB() *DB { return tx.db }

// Size is the size of the database, in bytes, as this transaction sees it.
func (tx *Tx) Size() int64 {
	info, err := tx.info()
	if err != nil {
		return 0
	}
	return int64(info.size)
}

// Writable reports whether this is a write transaction.
func (tx *Tx) Writable() bool { return tx.writable }

// Stats are this transaction's counters.
func (tx *Tx) Stats() TxStats { return tx.stats }

// Cursor iterates over the top-level bucket names (values are nil).
func (tx *Tx) Cursor() *Cursor { return tx.root.Cursor() }

// Bucket is the top-level bucket name, or nil.
func (tx *Tx) Bucket(name []byte) *Bucket { return tx.root.Bucket(name) }

// CreateBucket creates a top-level bucket.
func (tx *Tx) CreateBucket(name []byte) (*Bucket, error) { return tx.root.CreateBucket(name) }

// CreateBucketIfNotExists creates a top-level bucket unless it exists.
func (tx *Tx) CreateBucketIfNotExists(name []byte) (*Bucket, error) {
	return tx.root.CreateBucketIfNotExists(name)
}

// DeleteBucket deletes a top-level bucket and everything in it.
func (tx *Tx) DeleteBucket(name []byte) error { return tx.root.DeleteBucket(name) }

// ForEach calls fn for each top-level bucket.
func (tx *Tx) ForEach(fn func(name []byte, b *Bucket) error) error {
	return tx.root.ForEach(func(k, v []byte) error {
		return fn(k, tx.root.Bucket(k))
	})
}

// OnCommit adds a function run after a successful commit.
func (tx *Tx) OnCommit(fn func()) { tx.commitHandlers = append(tx.commitHandlers, fn) }

// Commit writes the changes (one fdatasync unless NoSync). A read transaction is
// ErrTxNotWritable.
func (tx *Tx) Commit() error {
	if tx.managed {
		panic("managed tx commit not allowed")
	}
	if tx.closed {
		return ErrTxClosed
	}
	if !tx.writable {
		return ErrTxNotWritable
	}
	if tx.err != nil {
		err := tx.err
		tx.rollback()
		return err
	}
	rc := C.deadbolt_commit(tx.h, &tx.f.err)
	var err error
	if rc != C.DEADBOLT_OK {
		err = take(tx.f, rc, ErrTxNotWritable)
	}
	tx.close()
	if err != nil {
		return err
	}
	if tx.db.StrictMode {
		if err := tx.db.View(func(t *Tx) error {
			for e := range t.Check() {
				return e
			}
			return nil
		}); err != nil {
			panic("check fail: " + err.Error())
		}
	}
	for _, fn := range tx.commitHandlers {
		fn()
	}
	return nil
}

// Rollback ends the transaction, discarding its changes.
func (tx *Tx) Rollback() error {
	if tx.managed {
		panic("managed tx rollback not allowed")
	}
	if tx.closed {
		return ErrTxClosed
	}
	tx.rollback()
	return nil
}

func (tx *Tx) rollback() {
	if tx.closed {
		return
	}
	if rc := C.deadbolt_rollback(tx.h, &tx.f.err); rc != C.DEADBOLT_OK {
		C.deadbolt_error_clear(&tx.f.err)
	}
	tx.close()
}

func (tx *Tx) close() {
	tx.closed = true
	if tx.fbuf != nil {
		C.free(unsafe.Pointer(tx.fbuf))
		tx.fbuf, tx.fowner = nil, nil
	}
	freeFrame(tx.f)
	tx.f = nil
	if tx.writable {
		runtime.UnlockOSThread()
	} else {
		tx.db.statlock.Lock()
		tx.db.stats.OpenTxN--
		tx.db.stats.TxStats.PageCount += tx.stats.PageCount
		tx.db.stats.TxStats.CursorCount += tx.stats.CursorCount
		tx.db.statlock.Unlock()
	}
	tx.db.mu.RUnlock()
}

// Copy writes the database to w (deprecated in bbolt: use WriteTo).
func (tx *Tx) Copy(w io.Writer) error {
	_, err := tx.WriteTo(w)
	return err
}

type writeTarget struct {
	w        io.Writer
	err      error
	written  int64
	pageSize int64
}

//export dbgoWrite
func dbgoWrite(user unsafe.Pointer, data *C.uint8_t, n C.size_t) C.int32_t {
	h := *(*cgo.Handle)(user)
	t := h.Value().(*writeTarget)
	w, err := t.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)))
	t.written += int64(w)
	if err == nil && w < int(n) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// bbolt's wording for a failure while the two meta pages are written.
		if meta := t.written / t.pageSize; meta < 2 {
			err = fmt.Errorf("meta %d copy: %s", meta, err)
		}
		t.err = err
		return 1
	}
	return 0
}

// WriteTo writes a consistent copy of the database, as this transaction sees it, to w (a
// valid deadbolt file), streaming. w must not use this transaction.
func (tx *Tx) WriteTo(w io.Writer) (n int64, err error) {
	if tx.closed {
		return 0, ErrTxClosed
	}
	t := &writeTarget{w: w, pageSize: int64(tx.db.pageSize)}
	if t.pageSize <= 0 {
		t.pageSize = 4096
	}
	h := cgo.NewHandle(t)
	defer h.Delete()
	cell := (*cgo.Handle)(C.malloc(C.size_t(unsafe.Sizeof(h))))
	defer C.free(unsafe.Pointer(cell))
	*cell = h
	rc := C.dbgo_write_to(tx.h, unsafe.Pointer(cell), &tx.f.u, &tx.f.err)
	if rc != C.DEADBOLT_OK {
		err := take(tx.f, rc, ErrTxNotWritable)
		if t.err != nil {
			err = t.err
		}
		return 0, err
	}
	return int64(tx.f.u), nil
}

// CopyFile writes a copy of the database to the file at path.
func (tx *Tx) CopyFile(path string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err = tx.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// Check verifies every page reachable from this transaction's snapshot (checksums against
// the parents' records, structure, key order, leaked or doubly used pages); the channel
// carries one error with the report if there are problems, and is then closed.
func (tx *Tx) Check() <-chan error {
	ch := make(chan error, 1)
	if tx.closed {
		ch <- ErrTxClosed
	} else if rc := C.deadbolt_tx_check(tx.h, &tx.f.err); rc != C.DEADBOLT_OK {
		ch <- take(tx.f, rc, ErrTxNotWritable)
	}
	close(ch)
	return ch
}

// Page is not available: it describes bbolt's page layout, which deadbolt does not have.
func (tx *Tx) Page(id int) (*PageInfo, error) {
	if tx.closed {
		return nil, ErrTxClosed
	}
	return nil, errors.New(fmt.Sprint("bbolt: Tx.Page is not supported by deadbolt (page ", id, ")"))
}
