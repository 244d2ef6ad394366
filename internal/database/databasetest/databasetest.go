// Package databasetest gives tests fresh databases of both kinds the service runs
// on: a SQLite file, and a database of its own on a PostgreSQL server.
package databasetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// DefaultURL is the server .ci/postgres starts.
const DefaultURL = "postgres://verifier:verifier@127.0.0.1:5432/postgres?sslmode=disable"

var seq atomic.Int64

// Postgres creates an empty database for t on POSTGRES_URL (or DefaultURL),
// drops it when t ends, and returns its URL. When no server answers, the
// test fails under CI (CI set) and is skipped elsewhere, saying why.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("POSTGRES_URL")
	if admin == "" {
		admin = DefaultURL
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("databasetest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL required under CI but it does not answer: %v", err)
		}
		t.Skipf("PostgreSQL does not answer (%v); run 'make test' to start one", err)
	}
	name := fmt.Sprintf("test_%d_%d_%d", os.Getpid(), time.Now().UnixNano(), seq.Add(1))
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("databasetest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("databasetest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("databasetest: %v", err)
	}
	u.Path = "/" + strings.TrimPrefix(name, "/")
	return u.String()
}

// SQLite returns the DATABASE_URL of a new SQLite file for t.
func SQLite(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

// Each runs f once per kind of database, in parallel subtests named
// "sqlite" and "postgres", with the URL of a fresh database.
func Each(t *testing.T, f func(t *testing.T, url string)) {
	for _, kind := range []struct {
		name string
		url  func(testing.TB) string
	}{{"sqlite", SQLite}, {"postgres", Postgres}} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			f(t, kind.url(t))
		})
	}
}
