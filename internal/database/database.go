// Package database opens the ent client for DATABASE_URL: SQLite (the
// embedded default) or PostgreSQL, and creates the schema. On SQLite, ent
// runs over one writer connection, whose turns are handed out first come
// first served in Go (Urgent work first), and a pool of readers for plain
// SELECTs; writes queued for the writer commit in groups,
// statements are prepared once per connection, and WAL checkpoints run on
// a connection of their own. PostgreSQL gets one pool for requests and a
// few connections of its own for Urgent work.
package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"golang.org/x/sync/singleflight"
	"modernc.org/sqlite" // pure Go: no cgo needed for `go run .`
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/migration"
)

// DB is an open database.
type DB struct {
	Ent *ent.Client
	// SQL is the pool beneath Ent that takes writes, for readiness pings
	// and the write probe. On SQLite it is the single writer connection;
	// Ent sends plain reads to a separate pool of readers.
	SQL *sql.DB
	// Dialect is dialect.SQLite or dialect.Postgres, for the few statements
	// ent's generated API cannot express.
	Dialect string
	// Migrated lists the schema migrations this Open applied.
	Migrated []migration.Applied

	probes singleflight.Group
}

// SQLite pool sizes. One writer: SQLite takes one write at a time, and
// queueing writers in Go (turns) hands the lock over
// at once, where several writer connections made the losers sleep in the
// driver's busy handler while holding a connection. Readers run beside the
// writer under WAL; the pure-Go driver spends CPU in the caller's
// goroutine, so a few per core keep every core busy without a queue of
// connections that only compete.
const sqliteWriters = 1

func sqliteReaders() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// postgresConns is PostgreSQL's pool size: the server takes concurrent
// writes, and 20 leaves room beside other clients under its default
// max_connections of 100.
const postgresConns = 20

// postgresUrgentConns is the size of PostgreSQL's pool for Urgent work
// (see reserved): the relay's turn takes one at a time, and the rest serve
// the mailer's records of what the server accepted.
const postgresUrgentConns = 4

// Options tune OpenWith.
type Options struct {
	// CheckSchema refuses a database whose schema is behind this release
	// instead of migrating it (MIGRATE=off).
	CheckSchema bool
	// Log receives a line per schema migration applied; nil logs nothing.
	Log *slog.Logger
}

// Open connects to rawURL and brings the schema to this release's,
// applying the pending migrations.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	return OpenWith(ctx, rawURL, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, rawURL string, o Options) (*DB, error) {
	var (
		d   *DB
		drv dialect.Driver
		err error
	)
	path, isSQLite := strings.CutPrefix(rawURL, "sqlite:")
	switch {
	case isSQLite:
		d, drv, err = openSQLite(ctx, path)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		d, drv, err = openPostgres(ctx, rawURL)
	default:
		return nil, fmt.Errorf("database: unsupported DATABASE_URL scheme")
	}
	if err != nil {
		return nil, err
	}
	client := ent.NewClient(ent.Driver(drv))
	// On SQLite d.SQL is the writer, whose transactions are IMMEDIATE: the
	// migration holds the write lock, so another process starting on the
	// same file waits for it.
	d.Migrated, err = migration.Apply(ctx, d.SQL, d.Dialect, migration.Options{Check: o.CheckSchema, Log: o.Log})
	if err != nil {
		client.Close()
		// No redaction: nothing of the URL is in a migration's error, and
		// the caller tells ErrBehind apart. On SQLite, the migration is
		// the first write: another process's lock shows here.
		err = fmt.Errorf("database: %w", err)
		if isSQLite {
			err = explainSQLite(path, err)
		}
		return nil, err
	}
	d.Ent = client
	return d, nil
}

func openSQLite(ctx context.Context, path string) (*DB, dialect.Driver, error) {
	wdsn, err := sqliteDSN(path, true)
	if err != nil {
		return nil, nil, err
	}
	rdsn, _ := sqliteDSN(path, false)
	// The writer first: it switches the file to WAL before any reader
	// opens it.
	w, err := openPool(ctx, wdsn, sqliteWriters)
	if err != nil {
		return nil, nil, explainSQLite(path, err)
	}
	if _, err := w.ExecContext(ctx, createProbeTable); err != nil {
		w.Close()
		return nil, nil, explainSQLite(path, fmt.Errorf("database: create %s: %w", probeTable, err))
	}
	r, err := openPool(ctx, rdsn, sqliteReaders())
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	ck, err := openPool(ctx, wdsn, 1)
	if err != nil {
		w.Close()
		r.Close()
		return nil, nil, err
	}
	drv := newRouted(w, r, startCheckpointer(ck))
	return &DB{SQL: w, Dialect: dialect.SQLite}, drv, nil
}

func openPool(ctx context.Context, dsn string, n int) (*sql.DB, error) {
	base, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("database: open: %w", err)
	}
	db := sql.OpenDB(writableOnly{base})
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	// Processes opening a new file together (replicas, `verifier migrate`
	// beside a start) race to switch it to WAL, and SQLite answers the
	// loser's switch SQLITE_BUSY at once, whatever busy_timeout says: the
	// connection is tried again, for as long as busy_timeout would wait.
	deadline := time.Now().Add(sqliteBusyTimeout)
	for wait := connectRetryMin; ; wait = min(2*wait, connectRetryMax) {
		err := db.PingContext(ctx)
		if err == nil {
			return db, nil
		}
		if !isBusy(err) || time.Now().Add(wait).After(deadline) {
			db.Close()
			return nil, fmt.Errorf("database: connect: %w", err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("database: connect: %w", ctx.Err())
		}
	}
}

// Connecting to SQLite again after SQLITE_BUSY (see openPool).
const (
	connectRetryMin = 5 * time.Millisecond
	connectRetryMax = 200 * time.Millisecond
)

// sqliteBusyTimeout is busy_timeout: how long a statement waits for
// another connection's lock before it answers SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// isBusy reports whether err is SQLite's SQLITE_BUSY (any of its extended
// codes).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

func openPostgres(ctx context.Context, rawURL string) (*DB, dialect.Driver, error) {
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database: %w", redact(err, rawURL))
	}
	db := stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(pingAlways))
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("database: connect: %w", redact(err, rawURL))
	}
	if _, err := db.ExecContext(ctx, createProbeTable); err != nil && !createdMeanwhile(err) {
		db.Close()
		return nil, nil, fmt.Errorf("database: create %s: %w", probeTable, redact(err, rawURL))
	}
	urgent := stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(pingAlways))
	urgent.SetMaxOpenConns(postgresUrgentConns)
	urgent.SetMaxIdleConns(postgresUrgentConns)
	drv := reserved{Driver: entsql.OpenDB(dialect.Postgres, db), urgent: entsql.OpenDB(dialect.Postgres, urgent)}
	return &DB{SQL: db, Dialect: dialect.Postgres}, drv, nil
}

// createdMeanwhile reports an error of CREATE TABLE IF NOT EXISTS that
// says another session created the table at the same instant: PostgreSQL
// checks "if not exists" before it takes the catalog's locks, so replicas
// starting together can collide on it (duplicate_table; duplicate_object
// for the table's row type; or unique_violation on pg_type's name index).
// The table exists either way.
func createdMeanwhile(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "42P07" || pg.Code == "42710" || pg.Code == "23505")
}

// Close closes the pools.
func (d *DB) Close() error { return d.Ent.Close() }

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.SQL.PingContext(ctx) }

// pingAlways makes the pool check a PostgreSQL connection with one round
// trip each time it hands it out. pgx checks only connections idle for more
// than a second, so after a server restart every connection used in the
// last second failed one request of its own before the pool dropped it
// (measured: TestPostgresRecoversAfterConnectionsCut, ...AfterQuietCut). A
// round trip on a pooled connection costs far less than a request failed
// for nothing; in make bench on PostgreSQL, pinging only the connections
// whose socket a non-blocking peek found closed made no difference the
// noise let us see (BENCHMARKS.md).
func pingAlways(context.Context, stdlib.ShouldPingParams) bool { return true }

// probeTable holds the one row CheckWrite writes. It lives outside ent's
// schema on purpose: it is not data, only something to write to, and it
// must exist before any ent migration could fail half-way.
const (
	probeTable       = "readiness_probe"
	createProbeTable = "CREATE TABLE IF NOT EXISTS " + probeTable + " (id INTEGER PRIMARY KEY, at BIGINT NOT NULL)"
	upsertProbe      = "INSERT INTO " + probeTable + " (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)

// probeTimeout bounds one write probe. It is shorter than SQLite's busy
// timeout on purpose: a write lock held longer than this already makes
// requests slow, and readiness should say so before they start failing.
// It is also shorter than /readyz's own bound (2 s, httpapi), so a probe
// ends before the request that started it answers: a request that comes
// after the database recovered never joins a stale probe and inherits its
// failure (TestReadyzWhileWriteLockHeld saw that when both were 2 s).
const probeTimeout = 1500 * time.Millisecond

// CheckWrite reports whether the database takes writes now, which a ping
// does not tell: a pool can answer pings while every write fails (a SQLite
// file made read-only, a write lock held by another process, a PostgreSQL
// server in recovery or read-only). It takes the write lock and writes one
// row in a transaction, then rolls back: nothing is stored, and the probe
// costs no disk write, so /readyz can call it on every request. Calls made
// while a probe runs share its result, so a burst of readiness requests
// queues one write, not one each.
func (d *DB) CheckWrite(ctx context.Context) error {
	ch := d.probes.DoChan("write", func() (any, error) {
		// The probe belongs to every caller waiting on it, so one
		// caller's cancellation must not fail the others.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
		defer cancel()
		return nil, d.probeWrite(pctx)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("database: write probe: %w", ctx.Err())
	}
}

func (d *DB) probeWrite(ctx context.Context) error {
	// With _txlock=immediate, BeginTx takes SQLite's write lock.
	tx, err := d.SQL.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("database: write probe: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // the rollback is the point
	if _, err := tx.ExecContext(ctx, upsertProbe, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("database: write probe: %w", err)
	}
	if err := tx.Rollback(); err != nil {
		return fmt.Errorf("database: write probe: rollback: %w", err)
	}
	return nil
}

// errReadOnly is what a SQLite connection that came up read-only turns into.
var errReadOnly = errors.New("database: sqlite: the database file opened read-only; the service needs write access to the file and its directory")

// writableOnly refuses SQLite connections that came up read-only. SQLite
// opens a file it may not write read-only instead of failing, and such a
// connection then fails every write with SQLITE_READONLY for as long as it
// lives. database/sql keeps connections for ever (they are never closed
// while the pool needs them), so one opened in the few seconds the file was
// not writable kept failing writes long after the file was fine again: the
// service never recovered. Refused at open, such a connection never enters
// the pool; the request that needed it fails, and the next connection
// opened once the file is writable works.
type writableOnly struct{ driver.Connector }

func (w writableOnly) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := w.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ro, ok := c.(interface{ IsReadOnly(string) (bool, error) })
	if !ok {
		return c, nil
	}
	readOnly, err := ro.IsReadOnly("main")
	if err == nil && !readOnly {
		return c, nil
	}
	_ = c.Close()
	if err != nil {
		return nil, fmt.Errorf("database: sqlite: %w", err)
	}
	return nil, errReadOnly
}

// sqliteDSN turns a path into a modernc DSN with the pragmas this service
// relies on: WAL so readers never block the writer,
// synchronous=NORMAL (in WAL a COMMIT writes the WAL without fsync and the
// checkpoint syncs: a committed write survives a crash of the process, and
// only a power loss or OS crash can lose the last ones), checkpoints left
// to the checkpointer's own connection (see checkpointer), foreign keys on, and a
// busy timeout so a write lock held by another process (a backup, a second
// replica, sqlite3 in a shell) is waited for instead of failing; within
// this process the single writer never meets a lock. The writer's
// transactions are IMMEDIATE, so a read-then-write transaction takes the
// write lock at BEGIN and cannot fail half-way with SQLITE_BUSY; readers
// are query_only, so a write routed to them by mistake fails loudly
// instead of competing with the writer.
//
// temp_store=MEMORY keeps the statement journal in memory: every member
// of a commit group runs in a SAVEPOINT (see groups), whose journal holds
// the original of each page the member changes, and past 64 KiB SQLite
// spilled it to a temporary file created and deleted per transaction, at
// two pwrite calls a page. On a machine where a system call costs a
// microsecond or more (a VM whose kernel isolates its page tables from
// user space, BENCHMARKS.md), that was a third of a registration's pwrite
// calls and half an email's.
func sqliteDSN(path string, writer bool) (string, error) {
	if path == "" {
		return "", fmt.Errorf("database: sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			if abs, aerr := filepath.Abs(dir); aerr == nil {
				dir = abs
			}
			return "", fmt.Errorf("database: cannot create the directory %s of the SQLite file (this process is uid %d): %w", dir, os.Geteuid(), err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()), "synchronous(NORMAL)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	if writer {
		q.Set("_txlock", "immediate")
		// The checkpointer checkpoints; the writer only past this bound.
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerAutoCheckpoint))
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	// In a file: URI, SQLite decodes %XX and ends the path at ? or #;
	// escaped, any file name means itself.
	path = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + path + "?" + q.Encode(), nil
}

// explainSQLite names the file and what to change when SQLite cannot open
// or write it: SQLite's own words ("unable to open database file (14)",
// "attempt to write a readonly database (1544)") name neither the file
// nor the cause, and the operator reading them has only the log.
func explainSQLite(path string, err error) error {
	abs, aerr := filepath.Abs(path)
	if aerr != nil {
		abs = path
	}
	dir := filepath.Dir(abs)
	var se *sqlite.Error
	code := 0
	if errors.As(err, &se) {
		code = se.Code()
	}
	switch {
	case errors.Is(err, errReadOnly):
		return &explained{fmt.Sprintf("database: the SQLite file %s opened read-only: this process (uid %d) needs to write to the file and to its directory %s", abs, os.Geteuid(), dir), err}
	case code == sqlite3.SQLITE_READONLY_DIRECTORY:
		return &explained{fmt.Sprintf("database: the SQLite file %s cannot be written: this process (uid %d) may not write to its directory %s, where SQLite keeps the -wal and -shm files beside the database (%s)", abs, os.Geteuid(), dir, se.Error()), err}
	case code&0xff == sqlite3.SQLITE_CANTOPEN:
		if fi, serr := os.Stat(abs); serr == nil && fi.IsDir() {
			return &explained{fmt.Sprintf("database: %s is a directory: DATABASE_URL names the database file in it, e.g. sqlite:%s", abs, filepath.Join(abs, "verifier.db")), err}
		}
		return &explained{fmt.Sprintf("database: the SQLite file %s cannot be opened or created: this process (uid %d) needs to write to it and to its directory %s (%s)", abs, os.Geteuid(), dir, se.Error()), err}
	case code&0xff == sqlite3.SQLITE_BUSY:
		// SQLite's "database is locked" names neither the file nor who
		// holds it: only another process can, once busy_timeout is over.
		return &explained{fmt.Sprintf("database: the SQLite file %s stayed locked by another process for %s: is another verifier, or a tool with a transaction open, using the same file? (%s)", abs, sqliteBusyTimeout, se.Error()), err}
	}
	return err
}

// explained is an error told in other words than its cause's, which it
// keeps for errors.Is and errors.As.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// redact keeps a password in DATABASE_URL out of an error message. The
// drivers do not quote it, so where it appears it is mostly part of
// other words (the README's verifier:verifier@…/verifier makes pgx's
// "user=verifier database=verifier" read "user=xxxxx database=xxxxx"):
// the message then says what xxxxx stands for. The error redacted is not
// kept: its text is the password's way out.
func redact(err error, rawURL string) error {
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
			return fmt.Errorf("%s (xxxxx: the password of DATABASE_URL, hidden wherever its text appears, in a user, database or host name too)", strings.ReplaceAll(err.Error(), p, "xxxxx"))
		}
	}
	return err
}
