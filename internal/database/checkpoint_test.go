package database

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCheckpointOffTheWriter writes more than SQLite's default checkpoint
// threshold (1,000 pages) through the writer: its COMMITs leave every
// frame in the WAL (a writer that checkpointed would have started the WAL
// over), and the checkpointer's connection copies them all.
func TestCheckpointOffTheWriter(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wdsn, err := sqliteDSN(filepath.Join(t.TempDir(), "v.db"), true)
	require.NoError(t, err)
	w, err := openPool(ctx, wdsn, sqliteWriters)
	require.NoError(t, err)
	defer w.Close()
	conn, err := openPool(ctx, wdsn, 1)
	require.NoError(t, err)
	// Not started: the test runs the checkpoint itself, so no tick can
	// start the WAL over under it.
	ck := &checkpointer{db: conn}
	defer conn.Close()

	const rows, pagesPerRow = 160, 8 // 32 KiB each: 8 pages of 4 KiB (zeroblob: randomblob under -race took 30 s)
	for _, q := range []string{
		"CREATE TABLE b (v BLOB)",
		// One COMMIT past 1,000 pages: a writer that checkpoints does so
		// right after it.
		fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < %d) INSERT INTO b (v) SELECT zeroblob(32768) FROM n", rows),
		// The next write starts a fully checkpointed WAL over.
		"INSERT INTO b (v) VALUES (NULL)",
	} {
		_, err := w.ExecContext(ctx, q)
		require.NoError(t, err)
	}

	frames, copied, err := ck.checkpoint(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, frames, rows*pagesPerRow, "the writer checkpointed by itself")
	require.Equal(t, frames, copied, "frames left in the WAL with no reader holding them")

	var n int
	require.NoError(t, w.QueryRowContext(ctx, "SELECT count(*) FROM b").Scan(&n))
	require.Equal(t, rows+1, n)
}
