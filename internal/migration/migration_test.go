package migration_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/migration"
	"github.com/verifier/verifier/internal/testkit"
)

// open opens url as the service does, failing t on an error.
func open(t *testing.T, url string, o database.Options) *database.DB {
	t.Helper()
	db, err := database.OpenWith(context.Background(), url, o)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// files counts the migrations of a dialect.
func files(t *testing.T, dialectName string) []migrate.File {
	t.Helper()
	dir, err := migration.Dir(dialectName)
	require.NoError(t, err)
	fs, err := dir.Files()
	require.NoError(t, err)
	require.NotEmpty(t, fs)
	return fs
}

// requireSchema checks that db has exactly ent's schema in ent's tables
// (drops counted): the migrations and ent/schema agree, so a schema change
// committed without its migration fails here on both dialects.
func requireSchema(t *testing.T, db *database.DB, drops bool) {
	t.Helper()
	drift, err := migration.Drift(context.Background(), entsql.OpenDB(db.Dialect, db.SQL), drops)
	require.NoError(t, err)
	require.Empty(t, drift, "the database differs from ent's schema: run go generate ./internal/migration with POSTGRES_URL set")
}

func revisions(t *testing.T, db *database.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.SQL.QueryRowContext(context.Background(), "SELECT count(*) FROM schema_revisions").Scan(&n))
	return n
}

// From an empty database: MIGRATE=off refuses it, the migrations build
// ent's schema, and a second start applies nothing.
func TestFromEmpty(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		_, err := database.OpenWith(context.Background(), url, database.Options{CheckSchema: true})
		require.ErrorIs(t, err, migration.ErrBehind)

		db := open(t, url, database.Options{Log: testkit.Logger(t, 0)})
		want := files(t, db.Dialect)
		require.Len(t, db.Migrated, len(want))
		for i, a := range db.Migrated {
			require.Equal(t, want[i].Version(), a.Version)
			require.False(t, a.Adopted)
		}
		requireSchema(t, db, true)
		require.NoError(t, db.Close())

		again := open(t, url, database.Options{CheckSchema: true})
		require.Empty(t, again.Migrated)
		require.Equal(t, len(want), revisions(t, again))
	})
}

// fixture returns the statements of the schema release 83da5bc made.
func fixture(t *testing.T, dialectName string) []string {
	t.Helper()
	name := map[string]string{dialect.SQLite: "sqlite", dialect.Postgres: "postgres"}[dialectName]
	b, err := os.ReadFile("testdata/83da5bc." + name + ".sql")
	require.NoError(t, err)
	stmts, err := migrate.NewLocalFile("83da5bc.sql", b).Stmts()
	require.NoError(t, err)
	require.NotEmpty(t, stmts)
	return stmts
}

// rawOpen opens url without migrating, as a release before versioned
// migrations left it.
func rawOpen(t *testing.T, url string) (*sql.DB, string) {
	t.Helper()
	driver, dsn, d := "pgx", url, dialect.Postgres
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		driver, dsn, d = "sqlite", "file:"+path+"?_pragma=foreign_keys(1)", dialect.SQLite
	}
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, d
}

// From the schema of the previous release (83da5bc, made by ent's
// auto-migration, with a user and a token of theirs in it): MIGRATE=off refuses it; a start
// upgrades it as auto-migration did, records the migrations as applied
// without running them, keeps the data, and leaves what ent's schema no
// longer has (the watch_tokens table) in place.
func TestFromPreviousRelease(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		raw, d := rawOpen(t, url)
		for _, s := range fixture(t, d) {
			_, err := raw.ExecContext(ctx, s)
			require.NoError(t, err, s)
		}
		id := uuid.New()
		_, err := raw.ExecContext(ctx, "INSERT INTO users (id, created_at, email, password_hash, status) VALUES ($1, $2, 'old@example.com', 'x', 'VERIFIED')", id, time.Now().UTC())
		require.NoError(t, err)
		_, err = raw.ExecContext(ctx, "INSERT INTO verification_tokens (created_at, token_hash, expires_at, user_id) VALUES ($1, 'h', $1, $2)", time.Now().UTC(), id)
		require.NoError(t, err)
		require.NoError(t, raw.Close())

		_, err = database.OpenWith(ctx, url, database.Options{CheckSchema: true})
		require.ErrorIs(t, err, migration.ErrBehind)

		db := open(t, url, database.Options{Log: testkit.Logger(t, 0)})
		require.Len(t, db.Migrated, len(files(t, d)))
		for _, a := range db.Migrated {
			require.True(t, a.Adopted, "recorded, not run")
		}
		requireSchema(t, db, false)
		u, err := db.Ent.User.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, "old@example.com", u.Email)
		var left int
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT count(*) FROM watch_tokens").Scan(&left))
		var tokens int
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT count(*) FROM verification_tokens WHERE user_id = $1", id).Scan(&tokens))
		require.Equal(t, 1, tokens, "rows pointing at a rebuilt table keep their link")
		require.NoError(t, db.Close())

		again := open(t, url, database.Options{CheckSchema: true})
		require.Empty(t, again.Migrated)
	})
}

// Four replicas starting at once on one database: the migrations run
// once, the others wait for them and find nothing pending.
func TestConcurrentStarts(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		const n = 4
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			applied int
			errs    []error
		)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				db, err := database.OpenWith(context.Background(), url, database.Options{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				defer db.Close()
				if len(db.Migrated) > 0 {
					applied++
				}
			})
		}
		close(start)
		testkit.Wait(t, &wg, "end of %d replicas opening the database at once", n)
		require.Empty(t, errs)
		require.Equal(t, 1, applied, "one replica migrated")
		db := open(t, url, database.Options{})
		require.Equal(t, len(files(t, db.Dialect)), revisions(t, db))
		requireSchema(t, db, true)
	})
}

// A database a newer release migrated, or whose recorded migration was
// edited since, is refused: this release cannot know its schema.
func TestRefusesUnknownRevisions(t *testing.T) {
	t.Parallel()
	databasetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url, database.Options{})
		_, err := db.SQL.ExecContext(ctx, "INSERT INTO schema_revisions (version, description, hash, applied_at) VALUES ('99990101000000', 'future', 'h', 'now')")
		require.NoError(t, err)
		_, err = database.OpenWith(ctx, url, database.Options{})
		require.ErrorContains(t, err, "a newer release migrated it")

		_, err = db.SQL.ExecContext(ctx, "DELETE FROM schema_revisions WHERE version = '99990101000000'")
		require.NoError(t, err)
		_, err = db.SQL.ExecContext(ctx, "UPDATE schema_revisions SET hash = 'edited'")
		require.NoError(t, err)
		_, err = database.OpenWith(ctx, url, database.Options{})
		require.ErrorContains(t, err, "edited after its release")
	})
}
