package bbolt_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The bbolt files of the engine's corpus (tests/data/bolt, written by Go bbolt).
func corpus(name string) string { return filepath.Join("..", "tests", "data", "bolt", name) }

func TestOpenRefusesABboltFileAndLeavesItAlone(t *testing.T) {
	src := corpus("c_nested.db")
	before, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bolt.Open(src, 0600, nil)
	var bf *bolt.BoltFileError
	if !errors.As(err, &bf) || !errors.Is(err, bolt.ErrBoltFormat) || !errors.Is(err, bolt.ErrInvalid) {
		t.Fatalf("want a *BoltFileError, got %v", err)
	}
	if bf.Path != src || !strings.Contains(err.Error(), "ImportBolt") {
		t.Fatalf("the error must name the file and the way out: %v", err)
	}
	after, _ := os.ReadFile(src)
	if !bytes.Equal(before, after) {
		t.Fatal("the bbolt file was written")
	}
}

func TestCheckAndImportBolt(t *testing.T) {
	ok, report, err := bolt.CheckBolt(corpus("c_nested.db"))
	if err != nil || !ok {
		t.Fatalf("healthy file: ok=%v err=%v\n%s", ok, err, report)
	}
	ok, report, err = bolt.CheckBolt(corpus("corrupt_01_branch_to_freelist.db"))
	if err != nil || ok || !strings.Contains(report, "freelist") {
		t.Fatalf("moby/moby#49074's file: ok=%v err=%v\n%s", ok, err, report)
	}

	dir := t.TempDir()
	dst := filepath.Join(dir, "strict.db")
	err = bolt.ImportBolt(corpus("corrupt_01_branch_to_freelist.db"), dst)
	if !errors.Is(err, bolt.ErrCorrupted) {
		t.Fatalf("a strict import of a damaged file must fail as corruption: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatal("a refused import created its destination")
	}
	report, err = bolt.ImportBoltWith(corpus("corrupt_01_branch_to_freelist.db"), filepath.Join(dir, "salvaged.db"), bolt.ImportOptions{Salvage: true})
	if err != nil || !strings.Contains(report, "lost") {
		t.Fatalf("salvage import: %v\n%s", err, report)
	}

	// A healthy import opens with this package and holds buckets.
	dst = filepath.Join(dir, "nested.db")
	if err := bolt.ImportBolt(corpus("c_nested.db"), dst); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(dst, 0600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if b == nil {
				return fmt.Errorf("top-level %q is not a bucket", name)
			}
			n++
			return nil
		})
	}); err != nil || n == 0 {
		t.Fatalf("%d buckets, %v", n, err)
	}
	if err := bolt.ImportBolt(corpus("c_nested.db"), dst); err == nil {
		t.Fatal("an import over an existing file must be refused")
	}
}

// Damage met by Get (whose signature has no error) makes Get return nil, and is reported by
// Tx.Err, by View, and by Commit (which refuses to commit).
func TestDamageMetByGetIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%05d", i)) }
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("b"))
		if err != nil {
			return err
		}
		for i := 0; i < 2000; i++ {
			if err := b.Put(key(i), bytes.Repeat([]byte{7}, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A second commit rewrites only the path to the first leaf: open verifies the newest
	// commit's pages, so damage to another leaf is met by the read that reaches it.
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("b")).Put(key(0), []byte("new")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip a byte of the leaf page (type 3 at byte 4) that holds k01000.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for p := 2; p < len(data)/4096; p++ {
		if data[p*4096+4] == 3 && bytes.Contains(data[p*4096:(p+1)*4096], key(1000)) {
			victim = p
		}
	}
	if victim < 0 {
		t.Fatal("no leaf holds k01000")
	}
	data[victim*4096+2048] ^= 0xff
	if err := os.WriteFile(path, data, 0600); err != nil {
		t.Fatal(err)
	}

	db, err = bolt.Open(path, 0600, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer db.Close()
	missing := 0
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := 0; i < 2000; i++ {
			if b.Get(key(i)) == nil {
				missing++
			}
		}
		if b.Get(key(1000)) != nil {
			t.Error("a key of the damaged leaf was returned")
		}
		if !errors.Is(tx.Err(), bolt.ErrCorrupted) {
			t.Errorf("Tx.Err: %v", tx.Err())
		}
		return nil
	})
	if !errors.Is(err, bolt.ErrCorrupted) || !strings.Contains(err.Error(), fmt.Sprintf("page %d", victim)) {
		t.Fatalf("View must return the damage, naming page %d: %v", victim, err)
	}
	if missing == 0 || missing > 100 {
		t.Fatalf("%d keys unreadable; want those of one leaf", missing)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		tx.Bucket([]byte("b")).Get(key(0))
		for i := 0; i < 2000; i++ {
			tx.Bucket([]byte("b")).Get(key(i))
		}
		return nil
	})
	if !errors.Is(err, bolt.ErrCorrupted) {
		t.Fatalf("Commit after damage must fail with it: %v", err)
	}
}

// A daemon migrating itself at start-up: its store is still a bbolt file, so Open refuses it
// (untouched); the daemon diagnoses it, converts it next to the old one and opens the copy.
func ExampleImportBolt() {
	dir, _ := os.MkdirTemp("", "migrate")
	defer os.RemoveAll(dir)
	old := filepath.Join(dir, "metadata.db")
	data, _ := os.ReadFile(corpus("c_nested.db"))
	_ = os.WriteFile(old, data, 0600)

	db, err := bolt.Open(old, 0600, nil)
	if errors.Is(err, bolt.ErrBoltFormat) {
		ok, _, _ := bolt.CheckBolt(old)
		fmt.Println("bbolt file, healthy:", ok)
		converted := old + ".deadbolt"
		if err := bolt.ImportBolt(old, converted); err != nil {
			fmt.Println("import:", err)
			return
		}
		db, err = bolt.Open(converted, 0600, nil)
	}
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			fmt.Printf("bucket %s\n", name)
			return nil
		})
	})
	// Output:
	// bbolt file, healthy: true
	// bucket alpha
	// bucket empty
	// bucket inline-top
	// bucket zeta
}
