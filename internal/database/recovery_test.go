package database

import (
	"context"
	"database/sql"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

// register writes a user the way the register mutation does: in a
// transaction, which on SQLite takes the write lock at BEGIN.
func register(ctx context.Context, db *DB, email string) error {
	tx, err := db.Ent.Tx(ctx)
	if err != nil {
		return err
	}
	if _, err := tx.User.Create().SetEmail(email).SetPasswordHash("x").Save(ctx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// registerAtOnce registers n users from n goroutines, so the pool hands out
// as many connections as it holds: a broken one among them shows.
func registerAtOnce(t testing.TB, ctx context.Context, db *DB, prefix string, n int) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = register(ctx, db, prefix+strconv.Itoa(i)+"@example.com") })
	}
	testkit.Wait(t, &wg, "end of %d registrations at once", n)
	return errs
}

func TestCheckWrite(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url)
		require.NoError(t, err)
		defer db.Close()
		require.NoError(t, db.CheckWrite(ctx))
		var n int
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT count(*) FROM "+probeTable).Scan(&n))
		require.Zero(t, n, "the probe rolls back: nothing is stored")

		// Many readiness requests at once share probes and all answer.
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { errs[i] = db.CheckWrite(ctx) })
		}
		testkit.Wait(t, &wg, "end of 20 write checks at once")
		for _, err := range errs {
			require.NoError(t, err)
		}
	})
}

// TestCheckWriteWhileWriteLockHeld holds SQLite's write lock from another
// connection, as another process (a backup, a migration, sqlite3 in a
// shell) can: pings still answer, writes do not, and the probe says so. It
// works as root, which file permissions would not stop.
func TestCheckWriteWhileWriteLockHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := Open(ctx, "sqlite:"+path)
	require.NoError(t, err)
	defer db.Close()

	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	require.NoError(t, err)
	defer other.Close()
	holder, err := other.Conn(ctx)
	require.NoError(t, err)
	defer holder.Close()
	_, err = holder.ExecContext(ctx, "BEGIN EXCLUSIVE")
	require.NoError(t, err)

	require.NoError(t, db.Ping(ctx), "a ping does not see the lock")
	require.Error(t, db.CheckWrite(ctx), "the write probe does")

	_, err = holder.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	require.NoError(t, db.CheckWrite(ctx))
	require.NoError(t, register(ctx, db, "after-lock@example.com"))
}

// TestSQLiteRecoversFromReadOnlyFile makes the database file and its
// directory read-only while the pool opens connections, then writable
// again. SQLite opens a file it may not write read-only instead of failing;
// such a connection, kept in the pool, used to fail every write for the
// rest of the process's life. Root ignores file permissions, so as root the
// test runs itself again as nobody.
func TestSQLiteRecoversFromReadOnlyFile(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		runAsNobody(t, "TestSQLiteRecoversFromReadOnlyFile")
		return
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "v.db")
	db, err := Open(ctx, "sqlite:"+path)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, register(ctx, db, "before@example.com"))

	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	setMode := func(fileMode, dirMode os.FileMode) {
		for _, f := range files {
			require.NoError(t, os.Chmod(f, fileMode))
		}
		require.NoError(t, os.Chmod(dir, dirMode))
	}
	setMode(0o444, 0o555)
	// If the test stops early, TempDir's removal needs the directory back.
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })

	// The writer connection the pool holds keeps its writable handle, so
	// writes go on; a connection opened now finds the file read-only and
	// is refused, so it never enters a pool.
	require.NoError(t, db.CheckWrite(ctx), "the open writer still writes")
	wdsn, err := sqliteDSN(path, true)
	require.NoError(t, err)
	_, err = openPool(ctx, wdsn, 1)
	require.ErrorIs(t, err, errReadOnly, "a read-only connection never enters the pool")

	setMode(0o644, 0o755)
	require.NoError(t, db.CheckWrite(ctx))
	for i, err := range registerAtOnce(t, ctx, db, "after", 2*maxConns(db)) {
		require.NoError(t, err, "registration %d after the file is writable again", i)
	}
}

// maxConns is the size of the pool that takes writes, at least 8, so
// registrations at twice that many at once queue for it.
func maxConns(db *DB) int { return max(8, db.SQL.Stats().MaxOpenConnections) }

// runAsNobody runs test in a copy of this test binary as the user nobody,
// and fails unless it ran and passed there.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	u, err := user.Lookup("nobody")
	require.NoError(t, err, "user nobody, to run %s without root's disregard for permissions", test)
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	require.NoError(t, err)
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	require.NoError(t, err)

	// The go tool builds tests in a directory only root may enter.
	dir, err := os.MkdirTemp("", "database-test-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "database.test")
	copyFile(t, os.Args[0], bin)

	cmd := exec.CommandContext(t.Context(), bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	require.NoError(t, err)
	require.Contains(t, string(out), "--- PASS: "+test+" ", "the test ran as nobody and passed")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// TestPostgresRecoversAfterConnectionsCut cuts every connection between
// the pool and PostgreSQL, as a server restart or a failover does, and
// refuses new ones for a while: the probe fails meanwhile, and once the
// server answers again the pool serves writes at once, without a restart.
func TestPostgresRecoversAfterConnectionsCut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, proxy := pooledThroughProxy(t)

	proxy.Cut()
	require.Error(t, db.CheckWrite(ctx))
	err := register(ctx, db, "during@example.com")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "verifier:verifier", "no password in errors")

	proxy.Restore()
	require.NoError(t, db.CheckWrite(ctx), "the first probe after the server is back")
	// Before the pool pinged every connection it hands out, one of these
	// failed on a connection the cut had killed (1 of 40 in 5 of 5 runs).
	for i, err := range registerAtOnce(t, ctx, db, "after", 2*maxConns(db)) {
		require.NoError(t, err, "registration %d after the server is back", i)
	}
}

// TestPostgresRecoversAfterQuietCut cuts every connection between the pool
// and PostgreSQL and lets new ones through again at once, with no request
// in between: nothing has found the pooled connections dead, and each was
// used within the last second, so pgx's own rule (a ping after a second
// idle) would hand them out unchecked (it fails this test in 3 of 3 runs).
// pingAlways finds them closed, and no request after the cut fails.
func TestPostgresRecoversAfterQuietCut(t *testing.T) {
	t.Parallel()
	db, proxy := pooledThroughProxy(t)

	proxy.Cut()
	proxy.Restore()
	for i, err := range registerAtOnce(t, context.Background(), db, "after", 2*maxConns(db)) {
		require.NoError(t, err, "registration %d after the cut", i)
	}
}

// pooledThroughProxy opens PostgreSQL through a proxy the test can cut,
// with 8 connections in the pool, each used just now.
func pooledThroughProxy(t *testing.T) (*DB, *tcpproxy.Proxy) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(databasetest.Postgres(t))
	require.NoError(t, err)
	proxy := tcpproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	db, err := Open(ctx, u.String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	for i, err := range registerAtOnce(t, ctx, db, "before", 8) {
		require.NoError(t, err, "registration %d", i)
	}
	return db, proxy
}
