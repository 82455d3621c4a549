package bbolt

/*
#include "deadbolt.h"
*/
import "C"

import (
	"runtime"
	"unsafe"
)

func takeBuf(b *C.DeadboltBuf) string {
	s := C.GoStringN((*C.char)(unsafe.Pointer(b.ptr)), C.int(b.len))
	C.deadbolt_buf_free(b)
	return s
}

// ImportBolt converts the bbolt file src into a new deadbolt file dst (which must not
// exist), with deadbolt's hardened bbolt reader: src is opened read-only and never written. A
// damaged src is refused (an *Error with errors.Is(err, ErrCorrupted)) and nothing is written;
// ImportBoltWith's Salvage imports what is readable instead.
func ImportBolt(src, dst string) error {
	_, err := ImportBoltWith(src, dst, ImportOptions{})
	return err
}

// ImportOptions are the options of ImportBoltWith.
type ImportOptions struct {
	// Salvage imports everything readable from a damaged file (the report lists what was
	// lost) instead of refusing it.
	Salvage bool
}

// ImportBoltWith is ImportBolt with options; report is the importer's text (what was
// imported, the problems met, what was lost).
func ImportBoltWith(src, dst string, opts ImportOptions) (report string, err error) {
	f := newFrame()
	defer freeFrame(f)
	s, d := []byte(src), []byte(dst)
	var buf C.DeadboltBuf
	sv := C.int32_t(0)
	if opts.Salvage {
		sv = 1
	}
	rc := C.deadbolt_import_bolt(ptr(s), C.size_t(len(s)), ptr(d), C.size_t(len(d)), sv, &buf, &f.err)
	runtime.KeepAlive(s)
	runtime.KeepAlive(d)
	if rc != C.DEADBOLT_OK {
		return "", take(f, rc, ErrDatabaseReadOnly)
	}
	return takeBuf(&buf), nil
}

// CheckBolt diagnoses the bbolt file at path (read-only, bounded time and memory, whatever
// its bytes): ok is true when it is healthy; report lists every problem with its page.
func CheckBolt(path string) (ok bool, report string, err error) {
	f := newFrame()
	defer freeFrame(f)
	p := []byte(path)
	var buf C.DeadboltBuf
	var good C.int32_t
	rc := C.deadbolt_check_bolt(ptr(p), C.size_t(len(p)), &good, &buf, &f.err)
	runtime.KeepAlive(p)
	if rc != C.DEADBOLT_OK {
		return false, "", take(f, rc, ErrDatabaseReadOnly)
	}
	return good == 1, takeBuf(&buf), nil
}

// Salvage copies every bucket and key whose pages verify from the damaged deadbolt file src
// into a new file dst (which must not exist), trying both commits; src is never written. The
// report lists the key ranges that were lost.
func Salvage(src, dst string) (report string, err error) {
	f := newFrame()
	defer freeFrame(f)
	s, d := []byte(src), []byte(dst)
	var buf C.DeadboltBuf
	rc := C.deadbolt_salvage(ptr(s), C.size_t(len(s)), ptr(d), C.size_t(len(d)), &buf, &f.err)
	runtime.KeepAlive(s)
	runtime.KeepAlive(d)
	if rc != C.DEADBOLT_OK {
		return "", take(f, rc, ErrDatabaseReadOnly)
	}
	return takeBuf(&buf), nil
}
