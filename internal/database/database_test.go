package database

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/verifier/verifier/internal/database/databasetest"
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
		{"wal_autocheckpoint", "10000"},
		{"temp_store", "2"}, // MEMORY
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

func TestReadOnlyStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		read  bool
	}{
		{"SELECT `users`.`id` FROM `users`", true},
		{"  select count(*) from users", true},
		{"(SELECT 1) UNION (SELECT 2)", true},
		{"INSERT INTO `users` (`id`) VALUES (?) RETURNING `id`", false},
		{"UPDATE `users` SET `status` = ?", false},
		{"DELETE FROM `outbox_events`", false},
		{"WITH x AS (SELECT 1) DELETE FROM users", false},
		{"PRAGMA foreign_keys", false},
		{"SEL", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.read, readOnly(tt.query), tt.query)
	}
}

// TestSQLiteReadsBesideTheWriter holds the single writer in a transaction:
// reads inside it see its writes, and plain reads outside answer at once
// from a reader (they would wait for ever, until the context ends, if they
// queued for the writer), without the uncommitted row.
func TestSQLiteReadsBesideTheWriter(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "v.db"))
	require.NoError(t, err)
	defer db.Close()

	tx, err := db.Ent.Tx(ctx)
	require.NoError(t, err)
	require.NoError(t, tx.User.Create().SetEmail("a@example.com").SetPasswordHash("x").Exec(ctx))
	n, err := tx.User.Query().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a read in the transaction sees its write")
	n, err = db.Ent.User.Query().Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a plain read runs beside the writer and sees what is committed")

	// A write outside the transaction queues for the writer and goes
	// through once it is free.
	wrote := make(chan error, 1)
	go func() { wrote <- db.Ent.User.Create().SetEmail("b@example.com").SetPasswordHash("x").Exec(ctx) }()
	require.NoError(t, tx.Commit())
	require.NoError(t, testkit.Receive(t, wrote, "the write"))
	n, err = db.Ent.User.Query().Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

// Statements ent's API cannot express reach the database through the
// client and through a transaction.
func TestRawStatements(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url)
		require.NoError(t, err)
		defer db.Close()
		_, err = db.Ent.ExecContext(ctx, "INSERT INTO "+probeTable+" (id, at) VALUES (7, 1)")
		require.NoError(t, err)
		tx, err := db.Ent.Tx(ctx)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "UPDATE "+probeTable+" SET at = 2 WHERE id = 7")
		require.NoError(t, err)
		rows, err := tx.QueryContext(ctx, "SELECT at FROM "+probeTable+" WHERE id = 7")
		require.NoError(t, err)
		require.True(t, rows.Next())
		var at int
		require.NoError(t, rows.Scan(&at))
		require.NoError(t, rows.Close())
		require.Equal(t, 2, at, "a read in the transaction sees its write")
		require.NoError(t, tx.Commit())
		rows, err = db.Ent.QueryContext(ctx, "SELECT at FROM "+probeTable+" WHERE id = 7")
		require.NoError(t, err)
		require.True(t, rows.Next())
		require.NoError(t, rows.Scan(&at))
		require.NoError(t, rows.Close())
		require.Equal(t, 2, at)
	})
}

// TestOpenSQLiteSaysWhatToFix: a file SQLite cannot open or write is named,
// with what the operator has to change, instead of SQLite's bare "unable
// to open database file (14)".
func TestOpenSQLiteSaysWhatToFix(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestOpenSQLiteSaysWhatToFix")
		return
	}
	tests := []struct {
		name string
		// setup returns the path given as sqlite:PATH.
		setup func(t *testing.T, dir string) string
		want  []string
		// cause is what errors.As or errors.Is still find under the
		// explanation: SQLite's error code, or errReadOnly.
		cause func(t *testing.T, err error)
	}{
		{
			name:  "a directory",
			setup: func(t *testing.T, dir string) string { return dir },
			want:  []string{"is a directory", "e.g. sqlite:DIR/verifier.db"},
		},
		{
			name: "a directory not writable, no file yet",
			setup: func(t *testing.T, dir string) string {
				readOnlyDir(t, dir)
				return filepath.Join(dir, "v.db")
			},
			want:  []string{"DIR/v.db cannot be opened or created", "needs to write to it and to its directory DIR", "(14)"},
			cause: sqliteCode(sqlite3.SQLITE_CANTOPEN),
		},
		{
			name: "a directory to create in one not writable",
			setup: func(t *testing.T, dir string) string {
				readOnlyDir(t, dir)
				return filepath.Join(dir, "sub", "v.db")
			},
			want: []string{"cannot create the directory DIR/sub of the SQLite file", "permission denied"},
		},
		{
			name: "a writable file in a directory not writable",
			setup: func(t *testing.T, dir string) string {
				path := made(t, dir)
				readOnlyDir(t, dir)
				return path
			},
			want:  []string{"DIR/v.db cannot be written", "may not write to its directory DIR", "-wal and -shm"},
			cause: sqliteCode(sqlite3.SQLITE_READONLY_DIRECTORY),
		},
		{
			name: "a read-only file",
			setup: func(t *testing.T, dir string) string {
				path := made(t, dir)
				files, err := filepath.Glob(path + "*")
				require.NoError(t, err)
				for _, f := range files {
					require.NoError(t, os.Chmod(f, 0o444))
				}
				return path
			},
			want: []string{"DIR/v.db opened read-only", "needs to write to the file and to its directory DIR"},
			cause: func(t *testing.T, err error) {
				require.ErrorIs(t, err, errReadOnly)
			},
		},
		{
			name: "a file another process holds a write transaction on",
			setup: func(t *testing.T, dir string) string {
				path := made(t, dir)
				other, err := sql.Open("sqlite", path)
				require.NoError(t, err)
				other.SetMaxOpenConns(1)
				t.Cleanup(func() { _ = other.Close() })
				_, err = other.Exec("BEGIN EXCLUSIVE")
				require.NoError(t, err)
				return path
			},
			want:  []string{"DIR/v.db stayed locked by another process", "another verifier", "(5)"},
			cause: sqliteCode(sqlite3.SQLITE_BUSY),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := Open(context.Background(), "sqlite:"+tt.setup(t, dir))
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), strings.ReplaceAll(w, "DIR", dir))
			}
			if tt.cause != nil {
				tt.cause(t, err)
			}
		})
	}
}

// made makes and migrates v.db in dir, closed again, and returns its path.
func made(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "v.db")
	db, err := Open(context.Background(), "sqlite:"+path)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	return path
}

// sqliteCode checks that err carries SQLite's error with this code.
func sqliteCode(code int) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var se *sqlite.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, code, se.Code())
	}
}

// readOnlyDir takes write access to dir away until the test ends.
func readOnlyDir(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
}

// TestRedactSaysWhatItHid: the password of DATABASE_URL never shows in
// an error, and where hiding it changed other words (a password equal to
// the user or database name, as in the README's example) the message says
// what xxxxx stands for.
func TestRedactSaysWhatItHid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, msg, want string
	}{
		{
			name: "password equal to user and database",
			url:  "postgres://verifier:verifier@127.0.0.1:5432/verifier?sslmode=disable",
			msg:  "failed to connect to `user=verifier database=verifier`: dial tcp 127.0.0.1:5432: connect: connection refused",
			want: "failed to connect to `user=xxxxx database=xxxxx`: dial tcp 127.0.0.1:5432: connect: connection refused (xxxxx: the password of DATABASE_URL, hidden wherever its text appears, in a user, database or host name too)",
		},
		{
			name: "a password not in the message",
			url:  "postgres://u:s3cr3tPa55@db/x",
			msg:  "failed to connect to `user=u database=x`: dial tcp: connection refused",
			want: "failed to connect to `user=u database=x`: dial tcp: connection refused",
		},
		{
			name: "no password",
			url:  "postgres://u@db/x",
			msg:  "failed to connect",
			want: "failed to connect",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, redact(errors.New(tt.msg), tt.url).Error())
		})
	}
}
