package bbolt

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Batch runs fn in a write transaction shared with other concurrent callers of Batch, so
// that they commit together (bbolt's contract): fn may run more than once and must be
// idempotent; if one caller's fn fails, the batch is retried without it and that fn is run
// alone, as by Update, whose outcome is returned to that caller. A batch closes after
// MaxBatchSize calls or MaxBatchDelay.
func (db *DB) Batch(fn func(*Tx) error) error {
	done := make(chan error, 1)
	db.batchMu.Lock()
	if db.batch == nil || len(db.batch.calls) >= db.MaxBatchSize {
		b := &batch{db: db}
		b.timer = time.AfterFunc(db.MaxBatchDelay, b.run)
		db.batch = b
	}
	b := db.batch
	b.calls = append(b.calls, batchCall{fn: fn, done: done})
	if len(b.calls) >= db.MaxBatchSize {
		go b.run()
	}
	db.batchMu.Unlock()

	err := <-done
	if err == errRunAlone {
		err = db.Update(fn)
	}
	return err
}

type batchCall struct {
	fn   func(*Tx) error
	done chan<- error
}

type batch struct {
	db    *DB
	timer *time.Timer
	once  sync.Once
	calls []batchCall
}

var errRunAlone = errors.New("bbolt: batch call must run alone")

// run commits the batch once (from its timer or when it is full).
func (b *batch) run() {
	b.once.Do(func() {
		b.db.batchMu.Lock()
		b.timer.Stop()
		if b.db.batch == b {
			b.db.batch = nil
		}
		calls := b.calls
		b.db.batchMu.Unlock()

		for len(calls) > 0 {
			failed := -1
			err := b.db.Update(func(tx *Tx) error {
				for i, c := range calls {
					if err := callRecovered(c.fn, tx); err != nil {
						failed = i
						return err
					}
				}
				return nil
			})
			if failed >= 0 {
				calls[failed].done <- errRunAlone
				calls = append(calls[:failed:failed], calls[failed+1:]...)
				continue
			}
			for _, c := range calls {
				c.done <- err
			}
			break
		}
	})
}

// callRecovered runs fn, turning a panic into an error (the caller then runs fn alone, and
// the panic is raised again in its own goroutine).
func callRecovered(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bbolt: batch function panicked: %v", p)
		}
	}()
	return fn(tx)
}
