// The seed scenario of deadbolt (moby/moby#49074, bbolt#872), end to end from Go: a
// moby-style volume store (a "volumes" bucket of JSON values, walked with ForEach at start-up)
// whose file has the damage of that issue, a branch element pointing at the free-list page.
// With bbolt, dockerd's cursor pushed stack entries forever and grew by 2 GB a minute. Here
// the start-up walk gets an error naming the page, in milliseconds and bounded memory, and
// the salvage path recovers every volume whose pages verify.
//
//	cargo build --release -p deadbolt-capi
//	cd go && CGO_LDFLAGS=-L../target/release go run ./examples/volumes
//
// It exits non-zero if any of that does not hold.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

const volumes = 3000

type volume struct {
	Name    string            `json:"Name"`
	Driver  string            `json:"Driver"`
	Labels  map[string]string `json:"Labels"`
	Options map[string]string `json:"Options"`
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func name(i int) string { return fmt.Sprintf("vol-%05d", i) }

func value(i int) []byte {
	v, _ := json.Marshal(volume{
		Name:   name(i),
		Driver: "local",
		Labels: map[string]string{"com.example.app": "app-" + strconv.Itoa(i%17)},
	})
	return v
}

// create writes the volume store in 30 commits (so that freed pages exist and the file has a
// free-list record, as any long-lived store has).
func create(path string) {
	db, err := bolt.Open(path, 0600, nil)
	if err != nil {
		fail("open: %v", err)
	}
	for start := 0; start < volumes; start += 100 {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("volumes"))
			if err != nil {
				return err
			}
			for i := start; i < start+100; i++ {
				if err := b.Put([]byte(name(i)), value(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			fail("update: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		fail("close: %v", err)
	}
}

// damage aims the second element of the volumes bucket's root branch at the free-list page,
// the damage of moby/moby#49074, with the offsets of docs/FORMAT.md. The branch and the pages
// above it get checksums that match (as if the pointer had been written wrong, not flipped on
// disk), so every check up to the meta passes and the damage is met only at the pointer
// itself, as bbolt met it. Returns the page ids.
func damage(path string) (branch, freelist uint64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	read := func(off int64, n int) []byte {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			fail("read at %d: %v", off, err)
		}
		return b
	}
	u64 := binary.LittleEndian.Uint64
	u32 := binary.LittleEndian.Uint32
	ps := int64(u32(read(44, 4)))
	// The newest meta (a commit and its confirmation have the same txid; either will do).
	meta := int64(0)
	if u64(read(ps+56, 8)) > u64(read(56, 8)) {
		meta = ps
	}
	m := read(meta, 128)
	root, freelist := u64(m[80:]), u64(m[104:])
	if freelist == 0 {
		fail("no free-list record in the file")
	}
	// The root bucket's leaf: find the "volumes" element, whose value is the bucket header.
	leaf := read(int64(root)*ps, int(ps))
	if leaf[4] != 3 {
		fail("root bucket page %d is not a leaf", root)
	}
	count := int(binary.LittleEndian.Uint16(leaf[6:]))
	var bucketRoot uint64
	for i := 0; i < count; i++ {
		el := leaf[32+16*i:]
		ko, kl := u32(el[4:]), u32(el[8:])
		if el[0] == 1 && string(leaf[ko:ko+kl]) == "volumes" {
			bucketRoot = u64(leaf[ko+kl:])
		}
	}
	span := func(id uint64) []byte {
		head := read(int64(id)*ps, 32)
		return read(int64(id)*ps, int(ps)*(1+int(u32(head[24:]))))
	}
	write := func(id uint64, b []byte) {
		if _, err := f.WriteAt(b, int64(id)*ps); err != nil {
			fail("%v", err)
		}
	}
	// The span's checksum: CRC-32 (IEEE) of bytes [4, len), in its header.
	seal := func(b []byte) uint32 {
		c := crc32.ChecksumIEEE(b[4:])
		binary.LittleEndian.PutUint32(b, c)
		return c
	}
	br := span(bucketRoot)
	if br[4] != 2 {
		fail("volumes root page %d is not a branch (type %d)", bucketRoot, br[4])
	}
	binary.LittleEndian.PutUint64(br[32+32*1:], freelist) // element 1's child pgid
	brSum := seal(br)
	write(bucketRoot, br)
	// The bucket header's ChildRef (its checksum at byte 16) in the root bucket's leaf.
	for i := 0; i < count; i++ {
		el := leaf[32+16*i:]
		ko, kl := u32(el[4:]), u32(el[8:])
		if el[0] == 1 && string(leaf[ko:ko+kl]) == "volumes" {
			binary.LittleEndian.PutUint32(leaf[ko+kl+16:], brSum)
		}
	}
	leafSum := seal(leaf)
	write(root, leaf)
	// The meta's root ChildRef (checksum at byte 80+16), in every slot of the newest txid.
	txid := u64(m[56:])
	for _, off := range []int64{0, ps} {
		mb := read(off, int(ps))
		if u64(mb[56:]) != txid {
			continue
		}
		binary.LittleEndian.PutUint32(mb[96:], leafSum)
		seal(mb)
		if _, err := f.WriteAt(mb, off); err != nil {
			fail("%v", err)
		}
	}
	return bucketRoot, freelist
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return 0
}

// startUp is what the daemon does at start-up: open the store and load every volume.
func startUp(path string) (loaded int, err error) {
	db, err := bolt.Open(path, 0600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("volumes"))
		if b == nil {
			return errors.New("no volumes bucket")
		}
		return b.ForEach(func(k, v []byte) error {
			var vol volume
			if err := json.Unmarshal(v, &vol); err != nil {
				return err
			}
			loaded++
			return nil
		})
	})
	return loaded, err
}

func main() {
	dir, err := os.MkdirTemp("", "deadbolt-volumes")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "metadata.db")
	create(path)
	if n, err := startUp(path); err != nil || n != volumes {
		fail("healthy start-up: %d volumes, %v", n, err)
	}
	branch, freelist := damage(path)
	fmt.Printf("damaged %s: branch page %d, element 1 now points at free-list page %d\n", path, branch, freelist)

	runtime.GC()
	rss0 := rssKB()
	start := time.Now()
	n, err := startUp(path)
	took := time.Since(start)
	grew := rssKB() - rss0
	fmt.Printf("start-up on the damaged file: %d volumes loaded, error after %v, RSS grew by %d KiB:\n  %v\n", n, took, grew, err)
	if err == nil {
		fail("the damaged file was read without an error")
	}
	if !errors.Is(err, bolt.ErrCorrupted) {
		fail("the error is not a corruption error: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("page %d", freelist)) && !strings.Contains(err.Error(), fmt.Sprintf("page %d", branch)) {
		fail("the error names neither the branch nor the free-list page")
	}
	// Bounded memory: the error comes from a fixed-size cursor stack, not a growing one
	// (bbolt grew by 2 GB a minute here); 64 MiB is a generous ceiling for the whole attempt.
	if grew > 64<<10 {
		fail("RSS grew by %d KiB", grew)
	}

	saved := filepath.Join(dir, "salvaged.db")
	report, err := bolt.Salvage(path, saved)
	if err != nil {
		fail("salvage: %v", err)
	}
	fmt.Printf("salvage:\n%s\n", strings.TrimRight(report, "\n"))
	db, err := bolt.Open(saved, 0600, nil)
	if err != nil {
		fail("open salvaged: %v", err)
	}
	recovered := 0
	have := make([]bool, volumes)
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("volumes")).ForEach(func(k, v []byte) error {
			i, err := strconv.Atoi(strings.TrimPrefix(string(k), "vol-"))
			if err != nil || i < 0 || i >= volumes || !bytes.Equal(v, value(i)) {
				return fmt.Errorf("volume %q does not match what was written", k)
			}
			have[i] = true
			recovered++
			return nil
		})
	}); err != nil {
		fail("salvaged store: %v", err)
	}
	_ = db.Close()
	lost := volumes - recovered
	fmt.Printf("salvaged store: %d of %d volumes recovered intact, %d lost (the subtree behind the damaged element)\n", recovered, volumes, lost)
	// One branch element leads to one leaf of volumes (about 25 here): everything else is back.
	if lost < 1 || lost > 200 {
		fail("lost %d volumes", lost)
	}
	// The start-up walk loaded every volume before the damage, in order, then stopped.
	first := 0
	for first < volumes && have[first] {
		first++
	}
	if n != first {
		fail("the start-up walk loaded %d volumes; %d precede the damage", n, first)
	}
	fmt.Println("ok")
}
