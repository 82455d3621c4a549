package bbolt

/*
#include "deadbolt.h"
*/
import "C"

import "runtime"

type pgid uint64

// Bucket is a bucket in a transaction (nil-able, as bbolt's).
type Bucket struct {
	// FillPercent is accepted for compatibility (deadbolt splits pages by size).
	FillPercent float64

	tx *Tx
	h  C.uint64_t
}

// BucketStats are bucket statistics (the page counts are deadbolt's layout).
type BucketStats struct {
	BranchPageN       int
	BranchOverflowN   int
	LeafPageN         int
	LeafOverflowN     int
	KeyN              int
	Depth             int
	BranchAlloc       int
	BranchInuse       int
	LeafAlloc         int
	LeafInuse         int
	BucketN           int
	InlineBucketN     int
	InlineBucketInuse int
}

// Add adds other's counts to s.
func (s *BucketStats) Add(other BucketStats) {
	s.BranchPageN += other.BranchPageN
	s.BranchOverflowN += other.BranchOverflowN
	s.LeafPageN += other.LeafPageN
	s.LeafOverflowN += other.LeafOverflowN
	s.KeyN += other.KeyN
	if s.Depth < other.Depth {
		s.Depth = other.Depth
	}
	s.BranchAlloc += other.BranchAlloc
	s.BranchInuse += other.BranchInuse
	s.LeafAlloc += other.LeafAlloc
	s.LeafInuse += other.LeafInuse
	s.BucketN += other.BucketN
	s.InlineBucketN += other.InlineBucketN
	s.InlineBucketInuse += other.InlineBucketInuse
}

// Tx is the bucket's transaction.
func (b *Bucket) Tx() *Tx { return b.tx }

// Root is 0: deadbolt does not expose page ids.
func (b *Bucket) Root() pgid { return 0 }

// Writable reports whether the bucket's transaction is a write transaction.
func (b *Bucket) Writable() bool { return b.tx.writable }

// writeCheck is bbolt's order of checks for a write.
func (b *Bucket) writeCheck() error {
	if b.tx.closed {
		return ErrTxClosed
	}
	if !b.tx.writable {
		return ErrTxNotWritable
	}
	return nil
}

func (b *Bucket) open(name []byte, mode C.int32_t) (*Bucket, error) {
	t := b.tx
	rc := C.deadbolt_bucket(t.h, b.h, ptr(name), C.size_t(len(name)), mode, &t.f.u, &t.f.err)
	runtime.KeepAlive(name)
	if rc != C.DEADBOLT_OK {
		return nil, take(t.f, rc, ErrTxNotWritable)
	}
	return &Bucket{tx: t, h: t.f.u, FillPercent: DefaultFillPercent}, nil
}

// Bucket is the nested bucket name, or nil (also when name holds a value).
func (b *Bucket) Bucket(name []byte) *Bucket {
	if b.tx.closed || len(name) == 0 {
		return nil
	}
	c, err := b.open(name, C.DEADBOLT_BUCKET_OPEN)
	if err != nil {
		if err != ErrBucketNotFound && err != ErrIncompatibleValue && err != ErrKeyTooLarge {
			b.tx.noteDamage(err)
		}
		return nil
	}
	return c
}

// CreateBucket creates a nested bucket.
func (b *Bucket) CreateBucket(key []byte) (*Bucket, error) {
	if err := b.writeCheck(); err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, ErrBucketNameRequired
	}
	return b.open(key, C.DEADBOLT_BUCKET_CREATE)
}

// CreateBucketIfNotExists creates a nested bucket unless it exists.
func (b *Bucket) CreateBucketIfNotExists(key []byte) (*Bucket, error) {
	if err := b.writeCheck(); err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, ErrBucketNameRequired
	}
	return b.open(key, C.DEADBOLT_BUCKET_CREATE_IF_MISSING)
}

// DeleteBucket deletes a nested bucket and everything in it.
func (b *Bucket) DeleteBucket(key []byte) error {
	if err := b.writeCheck(); err != nil {
		return err
	}
	t := b.tx
	rc := C.deadbolt_bucket_delete(t.h, b.h, ptr(key), C.size_t(len(key)), &t.f.err)
	runtime.KeepAlive(key)
	if rc != C.DEADBOLT_OK {
		if rc == C.DEADBOLT_ERR_KEY_EMPTY || rc == C.DEADBOLT_ERR_INVALID_BUCKET_NAME {
			C.deadbolt_error_clear(&t.f.err)
			return ErrBucketNotFound
		}
		return take(t.f, rc, ErrTxNotWritable)
	}
	return nil
}

// Get is the value of key, or nil (absent, or a nested bucket). The value is valid until the
// transaction ends (see the package documentation).
func (b *Bucket) Get(key []byte) []byte {
	t := b.tx
	if t.closed || len(key) == 0 || len(key) > MaxKeySize {
		return nil
	}
	rc := C.deadbolt_get(t.h, b.h, ptr(key), C.size_t(len(key)), &t.f.val, &t.f.err)
	runtime.KeepAlive(key)
	if rc != C.DEADBOLT_OK {
		err := take(t.f, rc, ErrTxNotWritable)
		if err != ErrIncompatibleValue {
			t.noteDamage(err)
		}
		return nil
	}
	return view(&t.f.val)
}

// Put sets key to value.
func (b *Bucket) Put(key []byte, value []byte) error {
	if err := b.writeCheck(); err != nil {
		return err
	}
	if len(key) == 0 {
		return ErrKeyRequired
	} else if len(key) > MaxKeySize {
		return ErrKeyTooLarge
	} else if int64(len(value)) > MaxValueSize {
		return ErrValueTooLarge
	}
	t := b.tx
	rc := C.deadbolt_put(t.h, b.h, ptr(key), C.size_t(len(key)), ptr(value), C.size_t(len(value)), &t.f.err)
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
	if rc != C.DEADBOLT_OK {
		return take(t.f, rc, ErrTxNotWritable)
	}
	return nil
}

// Delete removes key (absent: no error; a nested bucket: ErrIncompatibleValue).
func (b *Bucket) Delete(key []byte) error {
	if err := b.writeCheck(); err != nil {
		return err
	}
	if len(key) == 0 || len(key) > MaxKeySize {
		return nil
	}
	t := b.tx
	rc := C.deadbolt_delete(t.h, b.h, ptr(key), C.size_t(len(key)), &t.f.err)
	runtime.KeepAlive(key)
	if rc != C.DEADBOLT_OK {
		return take(t.f, rc, ErrTxNotWritable)
	}
	return nil
}

// Sequence is the bucket's sequence number.
func (b *Bucket) Sequence() uint64 {
	t := b.tx
	if t.closed {
		return 0
	}
	if rc := C.deadbolt_sequence(t.h, b.h, &t.f.u, &t.f.err); rc != C.DEADBOLT_OK {
		t.noteDamage(take(t.f, rc, ErrTxNotWritable))
		return 0
	}
	return uint64(t.f.u)
}

// SetSequence sets the bucket's sequence number.
func (b *Bucket) SetSequence(v uint64) error {
	if err := b.writeCheck(); err != nil {
		return err
	}
	t := b.tx
	if rc := C.deadbolt_set_sequence(t.h, b.h, C.uint64_t(v), &t.f.err); rc != C.DEADBOLT_OK {
		return take(t.f, rc, ErrTxNotWritable)
	}
	return nil
}

// NextSequence increments the bucket's sequence number and returns the new value.
func (b *Bucket) NextSequence() (uint64, error) {
	if err := b.writeCheck(); err != nil {
		return 0, err
	}
	t := b.tx
	if rc := C.deadbolt_next_sequence(t.h, b.h, &t.f.u, &t.f.err); rc != C.DEADBOLT_OK {
		return 0, take(t.f, rc, ErrTxNotWritable)
	}
	return uint64(t.f.u), nil
}

// ForEach calls fn for every key of the bucket in order (v is nil for a nested bucket). fn
// must not change the bucket.
func (b *Bucket) ForEach(fn func(k, v []byte) error) error {
	if b.tx.closed {
		return ErrTxClosed
	}
	c, err := b.cursor()
	if err != nil {
		return err
	}
	defer c.close()
	k, v, err := c.move(C.DEADBOLT_CURSOR_FIRST, nil)
	for ; err == nil && k != nil; k, v, err = c.move(C.DEADBOLT_CURSOR_NEXT, nil) {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return err
}

// Stats are the bucket's statistics (deadbolt's page counts).
func (b *Bucket) Stats() BucketStats {
	t := b.tx
	var s BucketStats
	if t.closed || b.h == C.DEADBOLT_ROOT {
		return s
	}
	if rc := C.deadbolt_bucket_stats(t.h, b.h, &t.f.bstats, &t.f.err); rc != C.DEADBOLT_OK {
		t.noteDamage(take(t.f, rc, ErrTxNotWritable))
		return s
	}
	st := t.f.bstats
	ps := t.db.pageSize
	// bbolt counts a nested bucket's element as a key of its parent, and the bucket itself
	// in BucketN; an empty bucket has a depth of 1 (its root leaf).
	s.KeyN = int(st.keys + st.buckets)
	s.BucketN = int(st.buckets) + 1
	s.InlineBucketN = int(st.inline_buckets)
	s.BranchPageN = int(st.branch_pages)
	s.LeafPageN = int(st.leaf_pages)
	s.LeafOverflowN = int(st.overflow_pages)
	s.Depth = int(st.depth)
	if s.Depth < 1 {
		s.Depth = 1
	}
	s.BranchAlloc = s.BranchPageN * ps
	s.LeafAlloc = int(st.bytes_allocated) - s.BranchAlloc
	s.LeafInuse = int(st.bytes_used)
	return s
}

// Cursor is a cursor over the bucket. Its entries are valid until the transaction ends.
func (b *Bucket) Cursor() *Cursor {
	c, err := b.cursor()
	if err != nil {
		b.tx.noteDamage(err)
		return &Cursor{b: b}
	}
	return c
}

func (b *Bucket) cursor() (*Cursor, error) {
	t := b.tx
	if t.closed {
		return nil, ErrTxClosed
	}
	if rc := C.deadbolt_cursor_open(t.h, b.h, &t.f.u, &t.f.err); rc != C.DEADBOLT_OK {
		return nil, take(t.f, rc, ErrTxNotWritable)
	}
	t.stats.CursorCount++
	return &Cursor{b: b, h: t.f.u}, nil
}
