package database

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// checkpointEvery is how often the checkpointer moves what the WAL holds
// into the database file. Under load that keeps the WAL to about a
// second's worth of writes; idle, a checkpoint with nothing to copy costs
// a lock and no disk write.
const checkpointEvery = time.Second

// writerAutoCheckpoint is the writer's own wal_autocheckpoint, in pages: a
// bound on the WAL (about 40 MB of 4 KiB pages) for when the checkpointer
// cannot keep up or cannot run; ten times SQLite's default, so in normal
// running the writer leaves checkpoints to the checkpointer.
const writerAutoCheckpoint = 10000

// checkpointer runs SQLite's WAL checkpoints on a connection of its own,
// off the writer's path.
//
// Why: by default the COMMIT that takes the WAL past 1,000 pages runs the
// checkpoint itself, on the single writer, fsyncs included: measured under
// the fault suite's load, that COMMIT took 50–80 ms, and every write
// queued behind it waited as long. One of them is the mailer's SENT record,
// written between the SMTP server's "250" and the broker's ack: a crash in
// that wait sends the email a second time, so the wait is the duplicate
// window. A PASSIVE checkpoint on another connection takes none of the
// locks the writer needs, and the writer's COMMIT only appends to the WAL
// (synchronous=NORMAL).
type checkpointer struct {
	db      *sql.DB
	stop    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			// A failure (the file made read-only, say) leaves the pages
			// in the WAL, where they are as safe: the next tick tries
			// again.
			_, _, _ = c.checkpoint(context.Background())
		}
	}
}

// checkpoint copies every WAL frame no reader still needs into the
// database file, and returns the frames in the WAL and how many of them
// are in the database file now.
func (c *checkpointer) checkpoint(ctx context.Context) (frames, copied int, err error) {
	var busy int
	err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	return frames, copied, err
}

// close stops the checkpoints and closes their connection; it may be
// called again. Closing the last connection to the file checkpoints what
// is left (SQLite does).
func (c *checkpointer) close() error {
	c.stopped.Do(func() { close(c.stop) })
	<-c.done
	return c.db.Close()
}
