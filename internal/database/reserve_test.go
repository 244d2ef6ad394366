package database

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/database/databasetest"
)

// TestPostgresUrgentBesideAFullPool holds every connection of the pool
// requests share in an open transaction, as a burst of requests does:
// urgent work (the outbox relay's turn) still gets a connection, begins,
// writes and commits, because it has connections of its own.
func TestPostgresUrgentBesideAFullPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, databasetest.Postgres(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	held := make([]*ent.Tx, maxConns(db))
	for i := range held {
		held[i], err = db.Ent.Tx(ctx)
		require.NoError(t, err, "transaction %d", i)
		// A statement, so the transaction really holds its connection.
		_, err = held[i].User.Query().Count(ctx)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, tx := range held {
			_ = tx.Rollback()
		}
	})
	require.Equal(t, maxConns(db), db.SQL.Stats().InUse, "the shared pool is full")

	// Without a reserve this would wait for one of the held connections
	// until the deadline: the deadline only keeps a failure from hanging.
	urgent, cancel := context.WithTimeout(Urgent(ctx), 30*time.Second)
	defer cancel()
	require.NoError(t, InTx(urgent, db.Ent, func(tx *ent.Tx) error {
		return tx.User.Create().SetEmail("urgent@example.com").SetPasswordHash("x").Exec(urgent)
	}), "urgent transaction beside a full pool")
	n, err := db.Ent.User.Query().Count(urgent)
	require.NoError(t, err, "urgent read beside a full pool")
	require.Equal(t, 1, n, "the urgent transaction committed")

	plain, cancelPlain := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelPlain()
	_, err = db.Ent.User.Query().Count(plain)
	require.ErrorIs(t, err, context.DeadlineExceeded, "ordinary work waits for the shared pool")
}
