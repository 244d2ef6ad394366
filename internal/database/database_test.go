package database

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestOpenSQLiteSetsPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "sub", "v.db"))
	require.NoError(t, err)
	defer db.Close()

	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tt := range tests {
		var got string
		require.NoError(t, db.SQL.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got))
		require.Equal(t, tt.want, got, tt.pragma)
	}
	require.NoError(t, db.Ping(ctx))
	n, err := db.Ent.User.Query().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "schema created")
}

func TestOpenSQLiteOddFileName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	const name = "a b?c#d%41e.db"
	db, err := Open(ctx, "sqlite:"+filepath.Join(dir, name))
	require.NoError(t, err)
	require.NoError(t, db.CheckWrite(ctx))
	require.NoError(t, db.Close())
	require.FileExists(t, filepath.Join(dir, name), "the file has the name given, not one SQLite decoded")
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	t.Parallel()
	_, err := Open(context.Background(), "mysql://root@localhost/x")
	require.Error(t, err)
}
