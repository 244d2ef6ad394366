// Package database opens the ent client for DATABASE_URL: SQLite (the
// embedded default) or PostgreSQL, and creates the schema.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite", pure Go: no cgo needed for `go run .`

	"github.com/verifier/verifier/ent"
)

var migrateMu sync.Mutex

// DB is an open database.
type DB struct {
	Ent *ent.Client
	// SQL is the pool beneath Ent, for readiness pings.
	SQL *sql.DB
	// Dialect is dialect.SQLite or dialect.Postgres, for the few statements
	// ent's generated API cannot express.
	Dialect string
}

// Open connects to rawURL and creates or upgrades the schema.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	var (
		db      *sql.DB
		dia     string
		err     error
		maxConn int
	)
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		dia = dialect.SQLite
		var dsn string
		if dsn, err = sqliteDSN(strings.TrimPrefix(rawURL, "sqlite:")); err != nil {
			return nil, err
		}
		db, err = sql.Open("sqlite", dsn)
		// One writer at a time is SQLite's nature; a few connections let
		// reads proceed beside it under WAL.
		maxConn = 8
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		dia = dialect.Postgres
		db, err = sql.Open("pgx", rawURL)
		maxConn = 20
	default:
		return nil, fmt.Errorf("database: unsupported DATABASE_URL scheme")
	}
	if err != nil {
		return nil, fmt.Errorf("database: open: %w", err)
	}
	db.SetMaxOpenConns(maxConn)
	db.SetMaxIdleConns(maxConn)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database: connect: %w", redact(err, rawURL))
	}
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dia, db)))
	// ent's migration mutates the package-level table definitions, so two
	// databases opened at once in one process (tests do) must take turns.
	migrateMu.Lock()
	err = client.Schema.Create(ctx)
	migrateMu.Unlock()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("database: create schema: %w", err)
	}
	return &DB{Ent: client, SQL: db, Dialect: dia}, nil
}

// Close closes the pool.
func (d *DB) Close() error { return d.Ent.Close() }

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.SQL.PingContext(ctx) }

// sqliteDSN turns a path into a modernc DSN with the pragmas this service
// relies on: WAL so readers never block the writer, foreign keys on, a busy
// timeout so concurrent writers wait instead of failing, and IMMEDIATE
// transactions so a read-then-write transaction takes the write lock at
// BEGIN and cannot fail half-way with SQLITE_BUSY.
func sqliteDSN(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("database: sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("database: sqlite: create %s: %w", dir, err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", "busy_timeout(10000)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode(), nil
}

// redact keeps a password in DATABASE_URL out of an error message.
func redact(err error, rawURL string) error {
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), p, "xxxxx"))
		}
	}
	return err
}
