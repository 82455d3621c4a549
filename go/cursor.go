package bbolt

/*
#include <stdlib.h>
#include "deadbolt.h"
*/
import "C"

import (
	"bytes"
	"runtime"
	"unsafe"
)

// stepMax is the most entries a read transaction's cursor fetches per call into the library;
// the first fetch after a First, Last or Seek takes stepFirst and each next one twice the
// last, so short walks stay short.
const (
	stepMax   = 64
	stepFirst = 8
)

// Cursor walks a bucket's keys and nested buckets in key order. Keys and values are valid
// until the transaction ends.
//
// In a read transaction it fetches entries ahead in batches (one cgo call for up to stepMax
// Next or Prev), which is invisible: the snapshot cannot change, and any other move first puts
// the library's cursor back at this one's position. The batch lives in one buffer per
// transaction (C memory, freed when the transaction ends), used by one cursor at a time: a
// cursor whose batch another cursor took over puts the library's cursor back the same way.
type Cursor struct {
	b *Bucket
	h C.uint64_t

	n, i   int  // while this cursor owns the transaction's buffer: fetched buf[0:n], at buf[i-1]
	back   bool // fetched with Prev (Last, Prev) rather than Next
	ended  bool // the library's cursor went past an end after buf[n-1]
	sawEnd bool // ... and this cursor has returned that end
	// ahead: the library's cursor is not at this cursor's position but past it; at is the key
	// to seek to put it back (a view of the mapping, or a copy).
	ahead bool
	at    []byte
	// pending is the error of the move after buf[n-1] (the entries before it were delivered).
	pending error
}

// Bucket is the cursor's bucket.
func (c *Cursor) Bucket() *Bucket { return c.b }

func (t *Tx) fetchBuf() []C.DeadboltEntry {
	if t.fbuf == nil {
		t.fbuf = (*C.DeadboltEntry)(C.malloc(C.size_t(stepMax) * C.size_t(unsafe.Sizeof(C.DeadboltEntry{}))))
		if t.fbuf == nil {
			panic("bbolt: out of memory")
		}
	}
	return unsafe.Slice(t.fbuf, stepMax)
}

func entryOf(e *C.DeadboltEntry) (key, value []byte) {
	key = view(&e.key)
	if e.is_bucket == 0 {
		value = view(&e.value)
	}
	return key, value
}

// release gives up the transaction's buffer, remembering where the library's cursor must be
// put back to if it is ahead of this cursor's position.
func (c *Cursor) release() {
	t := c.b.tx
	if t.fowner != c {
		return
	}
	if c.n > 0 && (c.i < c.n || (c.ended && !c.sawEnd)) {
		c.ahead = true
		c.at, _ = entryOf(&t.fetchBuf()[c.i-1])
	}
	c.n, c.i = 0, 0
	t.fowner = nil
}

// fetch moves the library's cursor by op (then on in op's direction) for up to max entries.
func (c *Cursor) fetch(op C.int32_t, seek []byte, max int) (key, value []byte, err error) {
	t := c.b.tx
	if t.fowner != nil && t.fowner != c {
		t.fowner.release()
	}
	buf := t.fetchBuf()
	t.fowner = c
	var n C.size_t
	var ended C.uint8_t
	rc := C.deadbolt_cursor_step(t.h, c.h, op, ptr(seek), C.size_t(len(seek)), C.size_t(max), &buf[0], &n, &ended, &t.f.err)
	runtime.KeepAlive(seek)
	c.n, c.i, c.ended, c.sawEnd, c.ahead, c.at, c.pending = 0, 0, false, false, false, nil, nil
	if rc != C.DEADBOLT_OK {
		err := take(t.f, rc, ErrTxNotWritable)
		if n == 0 || n > stepMax {
			return nil, nil, err
		}
		c.pending = err // served after the entries read before it
	}
	c.n, c.ended = int(n), ended != 0
	c.back = op == C.DEADBOLT_CURSOR_LAST || op == C.DEADBOLT_CURSOR_PREV
	if c.n == 0 {
		c.sawEnd = true
		return nil, nil, nil
	}
	c.i = 1
	key, value = entryOf(&buf[0])
	return key, value, nil
}

// batched serves op from a read transaction's fetched entries where it can.
func (c *Cursor) batched(op C.int32_t, seek []byte) (key, value []byte, err error) {
	t := c.b.tx
	forward := op == C.DEADBOLT_CURSOR_NEXT
	step := forward || op == C.DEADBOLT_CURSOR_PREV
	if step && t.fowner == c && c.n > 0 && c.back == !forward {
		if c.i < c.n {
			key, value = entryOf(&t.fetchBuf()[c.i])
			c.i++
			return key, value, nil
		}
		if c.pending != nil {
			return nil, nil, c.pending
		}
		if c.ended {
			c.sawEnd = true
			return nil, nil, nil
		}
		// Twice the last batch (8, 16, 32, 64): a walk that stops early fetched little more.
		next := 2 * c.n
		if next > stepMax {
			next = stepMax
		}
		return c.fetch(op, nil, next)
	}
	// Another move: first put the library's cursor back at this cursor's position if it is
	// ahead of it (or past an end this cursor has not returned yet).
	c.release()
	if c.ahead {
		if _, _, err := c.one(C.DEADBOLT_CURSOR_SEEK, c.at); err != nil {
			return nil, nil, err
		}
		c.ahead, c.at = false, nil
	}
	if step {
		return c.fetch(op, nil, stepFirst)
	}
	return c.fetch(op, seek, stepFirst)
}

func (c *Cursor) move(op C.int32_t, seek []byte) (key, value []byte, err error) {
	t := c.b.tx
	if t.closed {
		return nil, nil, ErrTxClosed
	}
	if c.h == 0 {
		return nil, nil, t.err
	}
	if op == C.DEADBOLT_CURSOR_SEEK && len(seek) > MaxKeySize {
		// No key is longer than MaxKeySize, so the first key >= seek is the first key
		// > seek[:MaxKeySize]: seek to that prefix and step over it if it is there.
		prefix := seek[:MaxKeySize]
		key, value, err = c.move(op, prefix)
		if err == nil && bytes.Equal(key, prefix) {
			return c.move(C.DEADBOLT_CURSOR_NEXT, nil)
		}
		return key, value, err
	}
	if !t.writable {
		return c.batched(op, seek)
	}
	return c.one(op, seek)
}

// one is a single move of the library's cursor.
func (c *Cursor) one(op C.int32_t, seek []byte) (key, value []byte, err error) {
	t := c.b.tx
	rc := C.deadbolt_cursor_move(t.h, c.h, op, ptr(seek), C.size_t(len(seek)), &t.f.ent, &t.f.err)
	runtime.KeepAlive(seek)
	if rc != C.DEADBOLT_OK {
		return nil, nil, take(t.f, rc, ErrTxNotWritable)
	}
	e := &t.f.ent
	if e.found == 0 {
		return nil, nil, nil
	}
	key = view(&e.key)
	if e.is_bucket == 0 {
		value = view(&e.value)
	}
	return key, value, nil
}

func (c *Cursor) step(op C.int32_t, seek []byte) ([]byte, []byte) {
	k, v, err := c.move(op, seek)
	if err != nil {
		if err != ErrTxClosed {
			c.b.tx.noteDamage(err)
		}
		return nil, nil
	}
	return k, v
}

func (c *Cursor) close() {
	t := c.b.tx
	if t.fowner == c {
		t.fowner = nil
	}
	if !t.closed && c.h != 0 {
		if C.deadbolt_cursor_close(t.h, c.h, &t.f.err) != C.DEADBOLT_OK {
			C.deadbolt_error_clear(&t.f.err)
		}
	}
}

// First moves to the first entry (nil key when the bucket is empty; nil value for a bucket).
func (c *Cursor) First() (key []byte, value []byte) { return c.step(C.DEADBOLT_CURSOR_FIRST, nil) }

// Last moves to the last entry.
func (c *Cursor) Last() (key []byte, value []byte) { return c.step(C.DEADBOLT_CURSOR_LAST, nil) }

// Next moves to the next entry (nil key past the end).
func (c *Cursor) Next() (key []byte, value []byte) { return c.step(C.DEADBOLT_CURSOR_NEXT, nil) }

// Prev moves to the previous entry (nil key before the start).
func (c *Cursor) Prev() (key []byte, value []byte) { return c.step(C.DEADBOLT_CURSOR_PREV, nil) }

// Seek moves to the first entry whose key is >= seek.
func (c *Cursor) Seek(seek []byte) (key []byte, value []byte) {
	return c.step(C.DEADBOLT_CURSOR_SEEK, seek)
}

// Delete removes the entry under the cursor (a nested bucket: ErrIncompatibleValue).
func (c *Cursor) Delete() error {
	t := c.b.tx
	if t.closed {
		return ErrTxClosed
	} else if !t.writable {
		return ErrTxNotWritable
	}
	if rc := C.deadbolt_cursor_delete(t.h, c.h, &t.f.err); rc != C.DEADBOLT_OK {
		return take(t.f, rc, ErrTxNotWritable)
	}
	return nil
}
