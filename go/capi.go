package bbolt

/*
#cgo CFLAGS: -I${SRCDIR}/../capi/include
#cgo LDFLAGS: -L${SRCDIR}/../target/release -l:libdeadbolt_capi.a -ldl -lpthread -lm
#include <stdlib.h>
#include "deadbolt.h"

// One transaction's out-parameters, in C memory (so that passing them costs no allocation).
typedef struct {
	DeadboltError err;
	DeadboltSlice val;
	DeadboltEntry ent;
	uint64_t u;
	DeadboltTxInfo info;
	DeadboltBucketStats bstats;
} dbgo_frame;

static dbgo_frame *dbgo_frame_new(void) { return (dbgo_frame *)calloc(1, sizeof(dbgo_frame)); }
*/
import "C"

import (
	"errors"
	"unsafe"
)

// frame holds the C out-parameters of one transaction (or one database call).
type frame = C.dbgo_frame

func newFrame() *frame {
	f := C.dbgo_frame_new()
	if f == nil {
		panic("bbolt: out of memory")
	}
	return f
}

func freeFrame(f *frame) {
	C.deadbolt_error_clear(&f.err)
	C.free(unsafe.Pointer(f))
}

// ptr is the address of b's bytes for C (nil for an empty slice).
func ptr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// Error is a deadbolt error that has no bbolt equivalent (corruption, I/O, a poisoned handle,
// ...). errors.Is(err, ErrCorrupted) is true for damage found on disk.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return "deadbolt: " + e.Message }

// Is makes errors.Is(err, ErrCorrupted) true for corruption and errors.Is(err, ErrTimeout) for
// a lock timeout.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrCorrupted:
		return e.Code == C.DEADBOLT_ERR_CORRUPTION || e.Code == C.DEADBOLT_ERR_DAMAGED
	}
	return false
}

// FileTooSmallError is returned by Open for a file shorter than two pages that does not open:
// its text is bbolt's ("file size too small"); Err is deadbolt's diagnosis (errors.Is(err,
// ErrCorrupted) is true through it).
type FileTooSmallError struct {
	Size int64
	Err  error
}

func (e *FileTooSmallError) Error() string { return "file size too small" }

// Unwrap gives deadbolt's own error (which page, what was wrong).
func (e *FileTooSmallError) Unwrap() error { return e.Err }

// BoltFileError is returned by Open for a file in bbolt's format (not written): convert it
// with ImportBolt.
type BoltFileError struct {
	Path    string
	Message string
}

func (e *BoltFileError) Error() string {
	return "deadbolt: " + e.Path + " is a bbolt database (convert it with bbolt.ImportBolt, which never writes the source): " + e.Message
}

// Is: errors.Is(err, ErrBoltFormat) and errors.Is(err, ErrInvalid).
func (e *BoltFileError) Is(target error) bool { return target == ErrBoltFormat || target == ErrInvalid }

var (
	// ErrBoltFormat: the file is a bbolt database, not a deadbolt one.
	ErrBoltFormat = errors.New("file is in bbolt's format")
	// ErrCorrupted: a page failed verification (see Error).
	ErrCorrupted = errors.New("database corrupted")
)

// take converts the error in f (code rc) to a Go error and clears it.
func take(f *frame, rc C.int32_t, readOnlyErr error) error {
	msg := C.GoStringN((*C.char)(unsafe.Pointer(f.err.message)), C.int(f.err.message_len))
	C.deadbolt_error_clear(&f.err)
	switch rc {
	case C.DEADBOLT_ERR_KEY_EMPTY:
		return ErrKeyRequired
	case C.DEADBOLT_ERR_KEY_TOO_LARGE:
		return ErrKeyTooLarge
	case C.DEADBOLT_ERR_VALUE_TOO_LARGE:
		return ErrValueTooLarge
	case C.DEADBOLT_ERR_BUCKET_NOT_FOUND:
		return ErrBucketNotFound
	case C.DEADBOLT_ERR_BUCKET_EXISTS:
		return ErrBucketExists
	case C.DEADBOLT_ERR_INCOMPATIBLE_VALUE:
		return ErrIncompatibleValue
	case C.DEADBOLT_ERR_INVALID_BUCKET_NAME:
		return ErrBucketNameRequired
	case C.DEADBOLT_ERR_READ_ONLY:
		return readOnlyErr
	case C.DEADBOLT_ERR_TX_CLOSED:
		return ErrTxClosed
	case C.DEADBOLT_ERR_LOCK_TIMEOUT:
		return ErrTimeout
	case C.DEADBOLT_ERR_INVALID_FILE:
		return ErrInvalid
	case C.DEADBOLT_ERR_UNSUPPORTED_VERSION:
		return ErrVersionMismatch
	}
	return &Error{Code: int(rc), Message: msg}
}

// view is the value in s: a zero-copy view of the mapping when the library says it is stable
// until the transaction ends, a copy otherwise; nil when absent.
func view(s *C.DeadboltSlice) []byte {
	if s.ptr == nil {
		return nil
	}
	if s.len == 0 {
		return []byte{}
	}
	if s.flags&C.DEADBOLT_SLICE_STABLE != 0 {
		return unsafe.Slice((*byte)(unsafe.Pointer(s.ptr)), int(s.len))
	}
	return C.GoBytes(unsafe.Pointer(s.ptr), C.int(s.len))
}
