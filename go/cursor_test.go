package bbolt_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// seed is DEADBOLT_SEED, or the clock (printed on failure, to replay).
func seed(t *testing.T) int64 {
	if s := os.Getenv("DEADBOLT_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return time.Now().UnixNano()
}

// A read transaction's cursors fetch entries ahead in batches (in one buffer they take from
// each other); a write transaction's move one entry per call. The same random moves of two
// cursors must give the same entries in both.
func TestCursorBatchingIsInvisible(t *testing.T) {
	s := seed(t)
	r := rand.New(rand.NewSource(s))
	defer func() {
		if t.Failed() {
			t.Logf("replay with DEADBOLT_SEED=%d", s)
		}
	}()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for round := 0; round < 20; round++ {
		n := r.Intn(400)
		var keys [][]byte
		if err := db.Update(func(tx *bolt.Tx) error {
			_ = tx.DeleteBucket([]byte("b"))
			b, err := tx.CreateBucket([]byte("b"))
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				k := []byte(fmt.Sprintf("%06d", r.Intn(1000000)))
				keys = append(keys, k)
				if r.Intn(10) == 0 {
					if _, err := b.CreateBucketIfNotExists(k); err != nil && err != bolt.ErrIncompatibleValue {
						return err
					}
				} else if err := b.Put(k, bytes.Repeat(k, 1+r.Intn(3))); err != nil && err != bolt.ErrIncompatibleValue {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		type step struct {
			op, which int
			seek      []byte
		}
		var steps []step
		for i := 0; i < 300; i++ {
			st := step{op: r.Intn(8), which: r.Intn(3) / 2}
			if st.op == 4 {
				st.seek = []byte(fmt.Sprintf("%06d", r.Intn(1000000)))
				if len(keys) > 0 && r.Intn(2) == 0 {
					st.seek = keys[r.Intn(len(keys))]
				}
			}
			steps = append(steps, st)
		}
		walk := func(tx *bolt.Tx) (out []string) {
			// Two cursors, used in turn: they share the read transaction's fetch buffer.
			cs := []*bolt.Cursor{tx.Bucket([]byte("b")).Cursor(), tx.Bucket([]byte("b")).Cursor()}
			for _, st := range steps {
				c := cs[st.which]
				var k, v []byte
				switch st.op {
				case 0:
					k, v = c.First()
				case 1:
					k, v = c.Last()
				case 2, 5, 6:
					k, v = c.Next()
				case 3, 7:
					k, v = c.Prev()
				case 4:
					k, v = c.Seek(st.seek)
				}
				out = append(out, fmt.Sprintf("%d/%d %q %q %v", st.which, st.op, k, v, v == nil))
			}
			return out
		}
		var read, write []string
		if err := db.View(func(tx *bolt.Tx) error { read = walk(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { write = walk(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		for i := range read {
			if read[i] != write[i] {
				t.Fatalf("round %d (%d keys), step %d: read tx %s, write tx %s", round, n, i, read[i], write[i])
			}
		}
	}
}

// A seek past the longest possible key lands on the first key above its first MaxKeySize
// bytes, as if the engine took the whole key.
func TestSeekLongerThanAnyKey(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	long := bytes.Repeat([]byte{'m'}, bolt.MaxKeySize)
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for _, k := range [][]byte{[]byte("a"), long, []byte("n")} {
			if err := b.Put(k, []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, writable := range []bool{false, true} {
		tx, err := db.Begin(writable)
		if err != nil {
			t.Fatal(err)
		}
		c := tx.Bucket([]byte("b")).Cursor()
		if k, _ := c.Seek(append(append([]byte{}, long...), 'x')); string(k) != "n" {
			t.Errorf("writable=%v: seek past the long key found %.10q", writable, k)
		}
		if k, _ := c.Seek(long); !bytes.Equal(k, long) {
			t.Errorf("writable=%v: seek to the long key found %.10q", writable, k)
		}
		_ = tx.Rollback()
	}
}
