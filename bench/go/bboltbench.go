// The comparison's workloads on Go bbolt (go.etcd.io/bbolt), driven by deadbolt-bench when `go`
// is installed. Same keys and values as bench/src/lib.rs, same RESULT lines on stdout.
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o bboltbench bboltbench.go
//	bboltbench child <entries> <dir> | probe <commits> <dir> | duel <entries> <dir>
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var table = []byte("bench")

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func key(i uint64) []byte {
	k := make([]byte, 24)
	for j := uint64(0); j < 3; j++ {
		v := splitmix(i*4 + j)
		for b := uint64(0); b < 8; b++ {
			k[j*8+b] = byte(v >> (8 * b))
		}
	}
	return k
}

func value(i uint64) []byte {
	v := make([]byte, 150)
	s := splitmix(i ^ 0x5555555555555555)
	for off := 0; off < 150; off += 8 {
		s = splitmix(s)
		for b := 0; b < 8 && off+b < 150; b++ {
			v[off+b] = byte(s >> (8 * uint(b)))
		}
	}
	return v
}

func nestedPath(i uint64) ([]byte, []byte) {
	o := i % 100
	n := (i / 100) % 10
	return []byte(fmt.Sprintf("o-%03d", o)), []byte(fmt.Sprintf("i-%02d", n))
}

type rng struct{ s uint64 }

func (r *rng) below(n uint64) uint64 { r.s = splitmix(r.s); return r.s % n }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bboltbench:", err)
		os.Exit(1)
	}
}

func emit(name string, v float64) {
	fmt.Printf("RESULT %s %v\n", name, v)
	fmt.Fprintf(os.Stderr, "  %s = %.1f\n", name, v)
}

func write(db *bolt.DB, from, to uint64) {
	must(db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(table)
		if err != nil {
			return err
		}
		for i := from; i < to; i++ {
			if err := b.Put(key(i), value(i)); err != nil {
				return err
			}
		}
		return nil
	}))
}

func get(db *bolt.DB, keys [][]byte) uint64 {
	var n uint64
	must(db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(table)
		for _, k := range keys {
			if v := b.Get(k); len(v) > 0 {
				n++
			}
		}
		return nil
	}))
	return n
}

func randomKeys(seed, n, below uint64) [][]byte {
	r := rng{seed}
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = key(r.below(below))
	}
	return ks
}

func dirSize(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return total
}

func peakKiB() float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

func open(dir string) *bolt.DB {
	must(os.MkdirAll(dir, 0o755))
	db, err := bolt.Open(filepath.Join(dir, "bbolt.db"), 0o600, nil)
	must(err)
	return db
}

func child(n uint64, dir string) {
	db := open(filepath.Join(dir, "db"))
	t := time.Now()
	write(db, 0, n)
	emit("bulk_load_ms", float64(time.Since(t).Microseconds())/1e3)
	next := n
	t = time.Now()
	for c := 0; c < 1000; c++ {
		write(db, next, next+1)
		next++
	}
	emit("individual_per_s", 1000/time.Since(t).Seconds())
	batches := n / 10000
	if batches < 10 {
		batches = 10
	}
	t = time.Now()
	for b := uint64(0); b < batches; b++ {
		write(db, next, next+1000)
		next += 1000
	}
	emit("batch_ms", float64(time.Since(t).Microseconds())/1e3)
	reads := randomKeys(1, n, n)
	t = time.Now()
	found := get(db, reads)
	emit("reads_1t_per_s", float64(n)/time.Since(t).Seconds())
	if found != n {
		must(fmt.Errorf("found %d of %d", found, n))
	}
	threads := runtime.NumCPU()
	per := make([][][]byte, threads)
	for i := range per {
		per[i] = randomKeys(uint64(100+i), n, n)
	}
	t = time.Now()
	var wg sync.WaitGroup
	for i := range per {
		wg.Add(1)
		go func(ks [][]byte) { defer wg.Done(); get(db, ks) }(per[i])
	}
	wg.Wait()
	emit("reads_nt_per_s", float64(n*uint64(threads))/time.Since(t).Seconds())
	emit("threads", float64(threads))
	per = nil
	nStarts := n / 100
	if nStarts < 100 {
		nStarts = 100
	}
	starts := randomKeys(2, nStarts, n)
	t = time.Now()
	var scanned uint64
	must(db.View(func(tx *bolt.Tx) error {
		for _, s := range starts {
			c := tx.Bucket(table).Cursor()
			left := 100
			for k, v := c.Seek(s); k != nil && left > 0; k, v = c.Next() {
				left--
				if len(v) > 0 {
					scanned++
				}
			}
		}
		return nil
	}))
	emit("scan_entries_per_s", float64(scanned)/time.Since(t).Seconds())
	nested := n / 10
	must(db.Update(func(tx *bolt.Tx) error {
		for i := uint64(0); i < nested; i++ {
			o, in := nestedPath(i)
			ob, err := tx.CreateBucketIfNotExists(o)
			if err != nil {
				return err
			}
			ib, err := ob.CreateBucketIfNotExists(in)
			if err != nil {
				return err
			}
			if err := ib.Put(key(i), value(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	r := rng{3}
	idx := make([]uint64, n)
	for i := range idx {
		idx[i] = r.below(nested)
	}
	t = time.Now()
	var nf uint64
	must(db.View(func(tx *bolt.Tx) error {
		for _, i := range idx {
			o, in := nestedPath(i)
			ob := tx.Bucket(o)
			if ob == nil {
				continue
			}
			ib := ob.Bucket(in)
			if ib == nil {
				continue
			}
			if ib.Get(key(i)) != nil {
				nf++
			}
		}
		return nil
	}))
	emit("nested_reads_per_s", float64(n)/time.Since(t).Seconds())
	if nf != n {
		must(fmt.Errorf("nested reads found %d of %d", nf, n))
	}
	emit("nested_native", 1)
	t = time.Now()
	must(db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(table)
		for i := uint64(0); i < n/2; i++ {
			if err := b.Delete(key(i)); err != nil {
				return err
			}
		}
		return nil
	}))
	emit("removals_ms", float64(time.Since(t).Microseconds())/1e3)
	emit("size_bytes", float64(dirSize(filepath.Join(dir, "db"))))
	dst, err := bolt.Open(filepath.Join(dir, "compact.db"), 0o600, nil)
	must(err)
	must(bolt.Compact(dst, db, 64<<20))
	must(dst.Close())
	st, err := os.Stat(filepath.Join(dir, "compact.db"))
	must(err)
	emit("compacted_bytes", float64(st.Size()))
	emit("peak_rss_kib", peakKiB())
}

func main() {
	if len(os.Args) != 4 {
		must(fmt.Errorf("usage: bboltbench child|probe|duel N DIR"))
	}
	n, err := strconv.ParseUint(os.Args[2], 10, 64)
	must(err)
	dir := os.Args[3]
	switch os.Args[1] {
	case "child":
		child(n, dir)
	case "probe":
		db := open(filepath.Join(dir, "db"))
		write(db, 0, 100)
		for i := uint64(0); i < n; i++ {
			write(db, 1000+i, 1001+i)
		}
		must(db.Close())
	case "duel":
		// Load n entries, then for every line on stdin make 100 commits and print the seconds.
		db := open(filepath.Join(dir, "db"))
		write(db, 0, n)
		fmt.Println("ready")
		next := n
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			t := time.Now()
			for c := 0; c < 100; c++ {
				write(db, next, next+1)
				next++
			}
			fmt.Println(time.Since(t).Seconds())
		}
	default:
		must(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}
