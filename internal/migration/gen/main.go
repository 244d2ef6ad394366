// Command gen writes the versioned migrations of internal/migration from
// ent's schema: one file per change, in Atlas's format with its atlas.sum,
// per dialect. It runs with `go generate ./...` and writes nothing while
// the migrations already build ent's schema, so CI's check that generation
// changes nothing catches a schema change committed without its migration.
//
// SQLite needs no server: the directory is replayed into an in-memory
// database and diffed against ent's schema. PostgreSQL's diff needs a
// server too; with POSTGRES_URL set (a role that may create databases) gen
// replays into a scratch database it creates and drops, and without it gen
// says so and leaves the PostgreSQL migrations as they are (the tests of
// internal/migration fail on a PostgreSQL directory that lags ent's schema).
//
//	go run ./internal/migration/gen [-name add_something]
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/schema"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	entmigrate "github.com/verifier/verifier/ent/migrate"
)

func main() {
	name := flag.String("name", "changes", "what the new migration does, in the file name (snake_case)")
	dir := flag.String("dir", ".", "the internal/migration folder")
	flag.Parse()
	if err := run(context.Background(), *dir, *name, os.Getenv("POSTGRES_URL")); err != nil {
		fmt.Fprintln(os.Stderr, "migration/gen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root, name, postgresURL string) error {
	// One version for every dialect written in this run, so a change has
	// the same file name in each folder.
	version := time.Now().UTC().Format("20060102150405")
	if err := diff(ctx, filepath.Join(root, "sqlite"), dialect.SQLite, version, name, openSQLite); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if postgresURL == "" {
		fmt.Fprintln(os.Stderr, "migration/gen: POSTGRES_URL is not set: PostgreSQL migrations left as they are (set it and run go generate ./internal/migration after changing ent/schema)")
		return nil
	}
	open := func(ctx context.Context) (*sql.DB, func(), error) { return openPostgres(ctx, postgresURL) }
	if err := diff(ctx, filepath.Join(root, "postgres"), dialect.Postgres, version, name, open); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// diff replays the folder into a fresh dev database and writes what ent's
// schema adds to it as one new migration, if anything.
func diff(ctx context.Context, path, dialectName, version, name string, open func(context.Context) (*sql.DB, func(), error)) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	dir, err := migrate.NewLocalDir(path)
	if err != nil {
		return err
	}
	db, done, err := open(ctx)
	if err != nil {
		return err
	}
	defer done()
	m, err := schema.NewMigrate(entsql.OpenDB(dialectName, db), Options(dir, version)...)
	if err != nil {
		return err
	}
	return m.NamedDiff(ctx, name, entmigrate.Tables...)
}

// Options are how every migration is planned: replayed from the folder,
// with drops (a column or index gone from ent's schema goes from the
// database too), in Atlas's format under a fixed version.
func Options(dir migrate.Dir, version string) []schema.MigrateOption {
	f, err := migrate.NewTemplateFormatter(
		template.Must(template.New("name").Parse(version+"{{ with .Name }}_{{ . }}{{ end }}.sql")),
		template.Must(template.New("content").Parse(`{{ range .Changes }}{{ with .Comment }}-- {{ . }}
{{ end }}{{ .Cmd }};
{{ end }}`)),
	)
	if err != nil {
		panic(err)
	}
	return []schema.MigrateOption{
		schema.WithDir(dir),
		schema.WithMigrationMode(schema.ModeReplay),
		schema.WithFormatter(f),
		schema.WithDropColumn(true),
		schema.WithDropIndex(true),
	}
}

// openSQLite opens an in-memory database on one connection: each
// connection to ":memory:" is a database of its own.
func openSQLite(ctx context.Context) (*sql.DB, func(), error) {
	db, err := sql.Open("sqlite", "file:dev?mode=memory&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, nil, err
	}
	db.SetMaxOpenConns(1)
	return db, func() { db.Close() }, db.PingContext(ctx)
}

// openPostgres creates a scratch database on the server of admin and drops
// it when done.
func openPostgres(ctx context.Context, admin string) (*sql.DB, func(), error) {
	adm, err := sql.Open("pgx", admin)
	if err != nil {
		return nil, nil, err
	}
	name := fmt.Sprintf("verifier_migration_dev_%d", time.Now().UnixNano())
	if _, err := adm.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adm.Close()
		return nil, nil, fmt.Errorf("create scratch database: %w", err)
	}
	drop := func() {
		_, _ = adm.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		adm.Close()
	}
	u, err := url.Parse(admin)
	if err != nil {
		drop()
		return nil, nil, err
	}
	u.Path = "/" + strings.TrimPrefix(name, "/")
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		drop()
		return nil, nil, err
	}
	return db, func() { db.Close(); drop() }, db.PingContext(ctx)
}
