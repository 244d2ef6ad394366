package database

import (
	"context"
	"fmt"

	"github.com/verifier/verifier/ent"
)

// InTx runs fn in a transaction of db and commits it if fn succeeds; if fn
// fails, the transaction is rolled back and fn's error returned as is, so
// callers can still match it. On SQLite the transaction waits its turn for
// the single writer (see the package doc).
func InTx(ctx context.Context, db *ent.Client, fn func(tx *ent.Tx) error) error {
	tx, err := db.Tx(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
