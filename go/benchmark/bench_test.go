// Package benchmark compares deadbolt-from-Go with Go bbolt on the workloads of
// docs/BENCHMARKS.md (24-byte random keys, 150-byte random values, a store of Entries keys,
// durable commits). The same file is run twice by go/bench.sh: once against Go bbolt (Debian's
// sources) and once against this repository's package, each as "go.etcd.io/bbolt".
package benchmark

import (
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Entries is the size of the preloaded store.
const Entries = 100000

var bucket = []byte("bench")

// keyset is the preloaded keys and values, from a fixed seed.
var keyset = func() (keys, values [][]byte) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < Entries; i++ {
		k, v := make([]byte, 24), make([]byte, 150)
		r.Read(k)
		r.Read(v)
		keys, values = append(keys, k), append(values, v)
	}
	return
}

var (
	once         sync.Once
	keys, values [][]byte
	loaded       string // a preloaded store, copied for each benchmark that writes
)

func preloaded(b *testing.B) string {
	once.Do(func() {
		keys, values = keyset()
		dir, err := os.MkdirTemp("", "gobench")
		if err != nil {
			panic(err)
		}
		loaded = filepath.Join(dir, "loaded.db")
		db, err := bolt.Open(loaded, 0600, nil)
		if err != nil {
			panic(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucket(bucket)
			if err != nil {
				return err
			}
			for i := range keys {
				if err := bk.Put(keys[i], values[i]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			panic(err)
		}
		if err := db.Close(); err != nil {
			panic(err)
		}
	})
	return loaded
}

// open opens a private copy of the preloaded store.
func open(b *testing.B) *bolt.DB {
	src := preloaded(b)
	dst := filepath.Join(b.TempDir(), "db")
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0600); err != nil {
		b.Fatal(err)
	}
	db, err := bolt.Open(dst, 0600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkPointRead: one random Get of a present key per op, 1000 per read transaction.
func BenchmarkPointRead(b *testing.B) {
	db := open(b)
	r := rand.New(rand.NewSource(2))
	b.ResetTimer()
	for done := 0; done < b.N; {
		if err := db.View(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			for i := 0; i < 1000 && done < b.N; i, done = i+1, done+1 {
				if bk.Get(keys[r.Intn(Entries)]) == nil {
					b.Fatal("missing key")
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRangeScan: seek to a random key and read the next 100 entries, per op.
func BenchmarkRangeScan(b *testing.B) {
	db := open(b)
	r := rand.New(rand.NewSource(3))
	b.ResetTimer()
	if err := db.View(func(tx *bolt.Tx) error {
		for n := 0; n < b.N; n++ {
			c := tx.Bucket(bucket).Cursor()
			i := 0
			for k, v := c.Seek(keys[r.Intn(Entries)]); k != nil && i < 100; k, v = c.Next() {
				_ = v
				i++
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBatchWrite: one durable write transaction of 1000 random new keys per op.
func BenchmarkBatchWrite(b *testing.B) {
	db := open(b)
	r := rand.New(rand.NewSource(4))
	k, v := make([]byte, 24), make([]byte, 150)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := db.Update(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			for i := 0; i < 1000; i++ {
				r.Read(k)
				r.Read(v)
				if err := bk.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDurableCommit: one durable write transaction of one new key per op.
func BenchmarkDurableCommit(b *testing.B) {
	db := open(b)
	r := rand.New(rand.NewSource(5))
	k, v := make([]byte, 24), make([]byte, 150)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		r.Read(k)
		r.Read(v)
		if err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucket).Put(k, v)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConcurrentBatch: DB.Batch from 4 x GOMAXPROCS goroutines, one new key per op.
func BenchmarkConcurrentBatch(b *testing.B) {
	db := open(b)
	b.SetParallelism(4)
	var seed int64
	var mu sync.Mutex
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		seed++
		r := rand.New(rand.NewSource(100 + seed))
		mu.Unlock()
		for pb.Next() {
			k, v := make([]byte, 24), make([]byte, 150)
			r.Read(k)
			r.Read(v)
			if err := db.Batch(func(tx *bolt.Tx) error {
				return tx.Bucket(bucket).Put(k, v)
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCall: Bucket.Sequence, a call that does almost nothing: for deadbolt, the cost of
// one crossing into the library (cgo, the handle checks, the transaction's lock).
func BenchmarkCall(b *testing.B) {
	db := open(b)
	if err := db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			_ = bk.Sequence()
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}
