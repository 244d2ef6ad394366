package database

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

type stmtBundle struct {
	ctx context.Context
	w   *stmts
}

// setupStmts opens a writer pool (one connection, as in production) on a
// fresh file with a table t holding ids 1, 2, 3.
func setupStmts(t *testing.T) stmtBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	dsn, err := sqliteDSN(filepath.Join(t.TempDir(), "v.db"), true)
	require.NoError(t, err)
	db, err := openPool(ctx, dsn, sqliteWriters)
	require.NoError(t, err)
	w := newStmts(db)
	t.Cleanup(func() {
		w.close()
		require.NoError(t, db.Close())
	})
	_, err = pooled{w}.ExecContext(ctx, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	require.NoError(t, err)
	for i := 1; i <= 3; i++ {
		_, err = pooled{w}.ExecContext(ctx, "INSERT INTO t (id) VALUES (?)", i)
		require.NoError(t, err)
	}
	return stmtBundle{ctx: ctx, w: w}
}

func (b stmtBundle) cached(query string) bool {
	b.w.mu.Lock()
	defer b.w.mu.Unlock()
	return b.w.cache.Contains(query)
}

// A statement a transaction misses (it holds the writer's only connection,
// so nothing can be prepared beside it) runs unprepared, and is prepared
// at the writer's next turn for the transactions after.
func TestStatementsPreparedAtNextTurn(t *testing.T) {
	t.Parallel()
	b := setupStmts(t)
	const q = "UPDATE t SET id = id WHERE id = ?"
	for i := range 2 {
		b.w.prepareWanted(b.ctx)
		require.Equal(t, i > 0, b.cached(q), "transaction %d", i)
		tx, err := b.w.db.BeginTx(b.ctx, nil)
		require.NoError(t, err)
		res, err := (&inTx{tx: tx, c: b.w}).ExecContext(b.ctx, q, 2)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		require.NoError(t, tx.Commit())
	}
}

// Two queries of one text open at once in a transaction each read their
// own rows: the second runs unprepared instead of resetting the first's
// statement under it.
func TestStatementsOpenTwiceInTransaction(t *testing.T) {
	t.Parallel()
	b := setupStmts(t)
	const q = "SELECT id FROM t ORDER BY id"
	rows, err := pooled{b.w}.QueryContext(b.ctx, q)
	require.NoError(t, err)
	require.NoError(t, rows.Close())
	require.True(t, b.cached(q))
	tx, err := b.w.db.BeginTx(b.ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback() //nolint:errcheck // read only
	in := &inTx{tx: tx, c: b.w}
	ids := func(r *entsql.Rows, n int) []int {
		var got []int
		for range n {
			require.True(t, r.Next())
			var id int
			require.NoError(t, r.Scan(&id))
			got = append(got, id)
		}
		return got
	}
	var first, second entsql.Rows
	require.NoError(t, in.query(b.ctx, q, nil, &first))
	require.Equal(t, []int{1}, ids(&first, 1))
	require.NoError(t, in.query(b.ctx, q, nil, &second))
	require.Equal(t, []int{1, 2, 3}, ids(&second, 3))
	require.Equal(t, []int{2, 3}, ids(&first, 2), "the first query's rows go on where they were")
	require.False(t, first.Next())
	require.NoError(t, first.Close())
	require.NoError(t, second.Close())
	require.Zero(t, in.open[q], "closed rows free the statement")
}

// A statement evicted while a call runs it stays open until the call is
// done, then closes.
func TestStatementsEvictedWhileInUse(t *testing.T) {
	t.Parallel()
	b := setupStmts(t)
	const q = "SELECT count(*) FROM t"
	s, done := b.w.get(b.ctx, q)
	require.NotNil(t, s)
	for i := range stmtCacheSize {
		_, release := b.w.get(b.ctx, fmt.Sprintf("SELECT %d", i))
		release()
	}
	require.False(t, b.cached(q), "evicted")
	var n int
	require.NoError(t, s.QueryRowContext(b.ctx).Scan(&n), "still open while in use")
	require.Equal(t, 3, n)
	done()
	require.Error(t, s.QueryRowContext(b.ctx).Scan(&n), "closed once done")
}

// A call done with its statement never waits for one preparing another:
// that one waits for a connection, maybe the one the first call's rows
// hold (the readers deadlocked so at c=64 until the requests timed out).
func TestStatementsPrepareWaitsForNobody(t *testing.T) {
	t.Parallel()
	b := setupStmts(t)
	s, done := b.w.get(b.ctx, "SELECT id FROM t")
	require.NotNil(t, s)
	rows, err := s.QueryContext(b.ctx)
	require.NoError(t, err)
	// So the wait counted below is the second prepare's.
	require.Zero(t, b.w.db.Stats().WaitCount, "no wait before the second prepare")
	prepared := make(chan *sql.Stmt, 1)
	go func() {
		s, release := b.w.get(b.ctx, "SELECT id FROM t WHERE id > 1")
		if release != nil {
			release()
		}
		prepared <- s
	}()
	testkit.Eventually(t, func() bool { return b.w.db.Stats().WaitCount > 0 },
		"the second prepare waits for the connection the rows hold")
	done()
	require.NoError(t, rows.Close())
	require.NotNil(t, testkit.Receive(t, prepared, "the second prepare"))
}
