package bbolt

/*
#include "deadbolt.h"
*/
import "C"

import "runtime"

// Cursor walks a bucket's keys and nested buckets in key order. Keys and values are valid
// until the transaction ends.
type Cursor struct {
	b *Bucket
	h C.uint64_t
}

// Bucket is the cursor's bucket.
func (c *Cursor) Bucket() *Bucket { return c.b }

func (c *Cursor) move(op C.int32_t, seek []byte) (key, value []byte, err error) {
	t := c.b.tx
	if t.closed {
		return nil, nil, ErrTxClosed
	}
	if c.h == 0 {
		return nil, nil, t.err
	}
	if op == C.DEADBOLT_CURSOR_SEEK && len(seek) > MaxKeySize {
		seek = seek[:MaxKeySize]
	}
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
