// Package migration keeps the database schema in versioned migrations and
// applies them at start. The migrations are SQL files in Atlas's format
// (one folder per dialect, each with its atlas.sum), written by ent from
// ent/schema (`go generate`, see gen), embedded in the binary.
//
// Apply runs in one transaction under a lock, so replicas starting together
// migrate once: the others wait, then find nothing pending. A database made
// by a release from before versioned migrations (ent's auto-migration, no
// revision table) is adopted: brought up to this release's schema by the
// same auto-migration it always had, checked against what the migrations
// build, and recorded as migrated.
package migration

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"

	entmigrate "github.com/verifier/verifier/ent/migrate"
)

//go:generate go run ./gen

//go:embed sqlite postgres
var files embed.FS

// folders name each dialect's migrations.
var folders = map[string]string{dialect.SQLite: "sqlite", dialect.Postgres: "postgres"}

// Dir returns the migrations of an ent dialect (dialect.SQLite or
// dialect.Postgres), checked against their atlas.sum.
func Dir(dialectName string) (migrate.Dir, error) {
	folder, ok := folders[dialectName]
	if !ok {
		return nil, fmt.Errorf("migration: no migrations for dialect %q", dialectName)
	}
	d := &migrate.MemDir{}
	err := fs.WalkDir(files, folder, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return d.WriteFile(strings.TrimPrefix(path, folder+"/"), b)
	})
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	if err := migrate.Validate(d); err != nil {
		return nil, fmt.Errorf("migration: %s migrations do not match their atlas.sum: %w", folder, err)
	}
	return d, nil
}

// revisions is the table of applied migrations. It is not Atlas's own
// revision table: the service applies its migrations itself, so it keeps
// what it needs, readable by an operator with any SQL client.
const (
	revisions       = "schema_revisions"
	createRevisions = "CREATE TABLE IF NOT EXISTS " + revisions + " (version VARCHAR(64) PRIMARY KEY, description VARCHAR(255) NOT NULL, hash VARCHAR(64) NOT NULL, applied_at VARCHAR(40) NOT NULL)"
	insertRevision  = "INSERT INTO " + revisions + " (version, description, hash, applied_at) VALUES ($1, $2, $3, $4)"
)

// lockKey is the PostgreSQL advisory lock every replica's migration takes
// (any constant; these are the bytes of "verifier").
const lockKey = 0x7665726966696572

// ErrBehind is returned by Apply with Check set when migrations are pending.
var ErrBehind = errors.New("migration: the database schema is behind this release")

// Options tune Apply.
type Options struct {
	// Check only reports pending migrations (ErrBehind) and changes
	// nothing (MIGRATE=off).
	Check bool
	// Log receives a line per migration applied; nil logs nothing.
	Log *slog.Logger
	// Now stamps the revisions (default time.Now).
	Now func() time.Time
}

// Applied is one migration Apply recorded.
type Applied struct {
	Version, Description string
	// Adopted is set on migrations recorded for a database that an earlier
	// release created, not run.
	Adopted bool
}

// Apply brings the database of db (an ent dialect) to this release's
// schema and returns what it applied, in order. On SQLite, db must begin
// its transactions IMMEDIATE (the service's writer pool does), so the
// transaction holds the write lock from its start.
func Apply(ctx context.Context, db *sql.DB, dialectName string, o Options) ([]Applied, error) {
	dir, err := Dir(dialectName)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration: connect: %w", err)
	}
	defer conn.Close()
	if dialectName == dialect.SQLite {
		// SQLite changes a table by building a new one and dropping the
		// old, and with foreign keys enforced that drop deletes, or
		// refuses, the rows that point at it: a migration runs without
		// them, and checks them all before it commits. The setting
		// cannot change inside a transaction, so it is set around it, on
		// a connection of its own, and back before the connection returns
		// to the pool.
		if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
			return nil, fmt.Errorf("migration: %w", err)
		}
		defer func() {
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA foreign_keys = ON"); err != nil {
				// Never back in the pool without foreign keys.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("migration: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if dialectName == dialect.Postgres {
		// Held until the transaction ends: the replicas starting with this
		// one wait here, then find the migrations applied.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockKey)); err != nil {
			return nil, fmt.Errorf("migration: lock: %w", err)
		}
	}
	applied, err := apply(ctx, tx, dialectName, dir, o)
	if err != nil {
		return nil, err
	}
	if dialectName == dialect.SQLite && len(applied) > 0 {
		if err := checkForeignKeys(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("migration: commit: %w", err)
	}
	for _, a := range applied {
		if a.Adopted {
			o.Log.Info("schema migration recorded for a database an earlier release created", "version", a.Version, "description", a.Description)
		} else {
			o.Log.Info("schema migration applied", "version", a.Version, "description", a.Description)
		}
	}
	return applied, nil
}

func apply(ctx context.Context, tx *sql.Tx, dialectName string, dir migrate.Dir, o Options) ([]Applied, error) {
	all, err := dir.Files()
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	sum, err := dir.Checksum()
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	hasRevisions, err := hasTable(ctx, tx, dialectName, revisions)
	if err != nil {
		return nil, err
	}
	done := map[string]string{}
	if hasRevisions {
		if done, err = readRevisions(ctx, tx); err != nil {
			return nil, err
		}
	}
	known := map[string]bool{}
	var pending []migrate.File
	for _, f := range all {
		known[f.Version()] = true
		h, err := sum.SumByName(f.Name())
		if err != nil {
			return nil, fmt.Errorf("migration: %w", err)
		}
		switch got, ok := done[f.Version()]; {
		case !ok:
			pending = append(pending, f)
		case got != h:
			return nil, fmt.Errorf("migration: %s was applied with other contents than this release's: the migration was edited after its release", f.Name())
		}
	}
	for v := range done {
		if !known[v] {
			return nil, fmt.Errorf("migration: the database has migration %s, which this release does not know: a newer release migrated it, so run that release (or newer)", v)
		}
	}
	if len(pending) == 0 {
		return nil, nil
	}
	adopt := false
	if len(done) == 0 {
		// Tables of ours without a revision table: a release from before
		// versioned migrations made them.
		if adopt, err = hasTable(ctx, tx, dialectName, entmigrate.UsersTable.Name); err != nil {
			return nil, err
		}
	}
	if o.Check {
		return nil, fmt.Errorf("%w: %d migrations pending (from %s); run 'verifier migrate', or start with MIGRATE=auto", ErrBehind, len(pending), pending[0].Name())
	}
	if !hasRevisions {
		if _, err := tx.ExecContext(ctx, createRevisions); err != nil {
			return nil, fmt.Errorf("migration: create %s: %w", revisions, err)
		}
	}
	if adopt {
		if err := adoptAutoMigrated(ctx, tx, dialectName); err != nil {
			return nil, err
		}
	}
	var out []Applied
	for _, f := range pending {
		if !adopt {
			stmts, err := f.Stmts()
			if err != nil {
				return nil, fmt.Errorf("migration: %s: %w", f.Name(), err)
			}
			for _, s := range stmts {
				if _, err := tx.ExecContext(ctx, s); err != nil {
					return nil, fmt.Errorf("migration: %s: %w", f.Name(), err)
				}
			}
		}
		h, _ := sum.SumByName(f.Name())
		if _, err := tx.ExecContext(ctx, insertRevision, f.Version(), f.Desc(), h, o.Now().UTC().Format(time.RFC3339)); err != nil {
			return nil, fmt.Errorf("migration: record %s: %w", f.Name(), err)
		}
		out = append(out, Applied{Version: f.Version(), Description: f.Desc(), Adopted: adopt})
	}
	return out, nil
}

// adoptAutoMigrated upgrades a database made by ent's auto-migration the
// way every release before versioned migrations did (adding tables,
// columns and indexes, never dropping), then checks that nothing of what
// the migrations build is missing. What earlier releases had and this one
// dropped (a table, a column) stays in place, unused: auto-migration never
// dropped anything, and the adoption does not start now.
func adoptAutoMigrated(ctx context.Context, tx *sql.Tx, dialectName string) error {
	drv := txDriver{Conn: entsql.Conn{ExecQuerier: tx}, dialect: dialectName}
	m, err := schema.NewMigrate(drv)
	if err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	entSchema.Lock()
	err = m.Create(ctx, entmigrate.Tables...)
	entSchema.Unlock()
	if err != nil {
		return fmt.Errorf("migration: upgrade a database from an earlier release: %w", err)
	}
	left, err := Drift(ctx, drv, false)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("migration: a database from an earlier release still differs from this release's schema after the upgrade: %s", strings.Join(left, "; "))
	}
	return nil
}

// Drift lists the changes that would bring the database of drv to ent's
// schema (each change's comment, such as `create "users" table`); none
// means it has every table, column and index of ent's schema. With drops,
// what the database has beyond ent's schema in ent's tables counts too.
// It changes nothing.
func Drift(ctx context.Context, drv dialect.Driver, drops bool) ([]string, error) {
	var changes []string
	m, err := schema.NewMigrate(drv,
		schema.WithDropColumn(drops),
		schema.WithDropIndex(drops),
		schema.WithApplyHook(func(schema.Applier) schema.Applier {
			return schema.ApplyFunc(func(_ context.Context, _ dialect.ExecQuerier, plan *migrate.Plan) error {
				for _, c := range plan.Changes {
					changes = append(changes, c.Comment)
				}
				return nil
			})
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("migration: %w", err)
	}
	entSchema.Lock()
	err = m.Create(ctx, entmigrate.Tables...)
	entSchema.Unlock()
	if err != nil {
		return nil, fmt.Errorf("migration: compare with ent's schema: %w", err)
	}
	return changes, nil
}

// entSchema serialises ent's schema tools within the process: they
// mutate the package-level table definitions of ent/migrate, and tests
// open several databases at once.
var entSchema sync.Mutex

// txDriver is an ent driver over one transaction, for ent's schema tools
// to run inside Apply's: the transactions they open are the one it holds.
type txDriver struct {
	entsql.Conn
	dialect string
}

// Query answers ent's check that SQLite enforces foreign keys as if it
// did: Apply turned them off for the migration and checks every row
// before it commits (checkForeignKeys), which is what ent's own SQLite
// migration does around its transaction, and what it cannot do inside
// this one.
func (d txDriver) Query(ctx context.Context, query string, args, v any) error {
	if d.dialect == dialect.SQLite && query == "PRAGMA foreign_keys" {
		query = "SELECT 1"
	}
	return d.Conn.Query(ctx, query, args, v)
}

func (d txDriver) Tx(context.Context) (dialect.Tx, error) { return dialect.NopTx(d), nil }
func (d txDriver) Close() error                           { return nil }
func (d txDriver) Dialect() string                        { return d.dialect }

// checkForeignKeys fails when a row points at a row that does not exist,
// which SQLite let a migration leave while foreign keys were off.
func checkForeignKeys(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("migration: foreign key check: %w", err)
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fk int
		if err := rows.Scan(&table, &rowid, &parent, &fk); err != nil {
			return fmt.Errorf("migration: foreign key check: %w", err)
		}
		tables = append(tables, table+" → "+parent)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migration: foreign key check: %w", err)
	}
	if len(tables) > 0 {
		return fmt.Errorf("migration: rolled back: it would leave rows pointing at rows that do not exist (%s)", strings.Join(slices.Compact(tables), ", "))
	}
	return nil
}

func hasTable(ctx context.Context, tx *sql.Tx, dialectName, name string) (bool, error) {
	q := "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
	if dialectName == dialect.Postgres {
		q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, name).Scan(&n); err != nil {
		return false, fmt.Errorf("migration: look for table %s: %w", name, err)
	}
	return n > 0, nil
}

func readRevisions(ctx context.Context, tx *sql.Tx) (map[string]string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT version, hash FROM "+revisions)
	if err != nil {
		return nil, fmt.Errorf("migration: read %s: %w", revisions, err)
	}
	defer rows.Close()
	done := map[string]string{}
	for rows.Next() {
		var v, h string
		if err := rows.Scan(&v, &h); err != nil {
			return nil, fmt.Errorf("migration: read %s: %w", revisions, err)
		}
		done[v] = h
	}
	return done, rows.Err()
}
