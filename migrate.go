package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/migration"
	"github.com/verifier/verifier/internal/opcmd"
)

// checkFailed is migrate -check's exit code when it could not tell whether
// migrations are pending; 1 means they are, 2 is a usage or setting error.
const checkFailed = 3

// migrateMain is `verifier migrate`: it brings DATABASE_URL's schema to
// this release's and exits, printing what it applied, so a deployment can
// migrate once before starting replicas with MIGRATE=off. With -check it
// changes nothing and exits 1 while migrations are pending, 3 when it
// could not tell (the database unreachable, say), so a pipeline that waits
// for a migration does not wait on a typo in DATABASE_URL.
func migrateMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verifier migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := fs.Bool("check", false, "change nothing; exit 1 while migrations are pending, 3 when the database cannot be checked")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: verifier migrate [-check]\n\nApplies the pending schema migrations to DATABASE_URL (under a lock: safe beside starting replicas) and prints them.")
		fs.PrintDefaults()
	}
	if status, done := opcmd.Parse(fs, args); done {
		return status
	}
	if fs.NArg() > 0 {
		// "migrate check" is a forgotten dash, not a request to apply.
		fmt.Fprintf(stderr, "verifier migrate: unknown argument %q (flags start with -)\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		printConfigErrors(stderr, err)
		return 2
	}
	// Opening a SQLite file makes it, and its directory: -check, which
	// changes nothing, tells a file not made yet apart first.
	if path, ok := strings.CutPrefix(cfg.DatabaseURL, "sqlite:"); ok && *check {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stdout, "database: %v: no database at %s yet, all migrations pending; run 'verifier migrate', or start with MIGRATE=auto\n", migration.ErrBehind, path)
			return 1
		}
	}
	db, err := database.OpenWith(ctx, cfg.DatabaseURL, database.Options{CheckSchema: *check})
	switch {
	case errors.Is(err, migration.ErrBehind):
		fmt.Fprintln(stdout, err)
		return 1
	case err != nil && *check:
		fmt.Fprintf(stderr, "verifier: cannot check the schema: %v\n", err)
		return checkFailed
	case err != nil:
		fmt.Fprintf(stderr, "verifier: %v\n", err)
		return 1
	}
	defer db.Close()
	for _, a := range db.Migrated {
		if a.Adopted {
			fmt.Fprintf(stdout, "recorded %s %s (the database was made by an earlier release, upgraded as it always was)\n", a.Version, a.Description)
		} else {
			fmt.Fprintf(stdout, "applied %s %s\n", a.Version, a.Description)
		}
	}
	if len(db.Migrated) == 0 {
		fmt.Fprintln(stdout, "the schema is up to date: nothing to apply")
	}
	return 0
}
