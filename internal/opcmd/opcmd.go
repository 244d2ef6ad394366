// Package opcmd is what the operator's commands (verifier dead-letters,
// verifier signing-key) share: the usage on request, their arguments read
// before anything else, and the settings and the database read and opened
// as the service reads and opens them. Their exit statuses: 0 done; 1
// failed, or refused what the settings or the database's state do not
// allow (a rotation of a key from SIGNING_KEY_FILE); 2 a usage error or
// settings that do not read.
package opcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
)

// Help prints usage when args are empty (status 2) or ask for help
// (status 0); done is false otherwise.
func Help(args []string, usage string, stderr io.Writer) (status int, done bool) {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, usage)
		return 2, true
	case isHelp(args[0]):
		fmt.Fprint(stderr, usage)
		return 0, true
	}
	return 0, false
}

// Parse parses a subcommand's flags; done is true when the command ends
// here: help asked for (status 0, fs printed it), or a bad flag (status 2,
// fs said so).
func Parse(fs *flag.FlagSet, args []string) (status int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

// Open reads the settings with getenv and opens their database. refuse,
// unless nil, sees the settings first: what it returns is reported, the
// database is not opened, and the status is 1, as for the refusals a
// command makes once it has read the database. MIGRATE applies as it does to the service:
// with off, a database behind this release is refused, not migrated by
// an operator's command. On failure Open says why on stderr and returns
// a nil database and the exit status.
func Open(ctx context.Context, getenv func(string) string, stderr io.Writer, refuse func(config.Config) error) (*database.DB, config.Config, int) {
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: invalid configuration:\n%v\n", err)
		return nil, cfg, 2
	}
	if refuse != nil {
		if err := refuse(cfg); err != nil {
			fmt.Fprintf(stderr, "verifier: %v\n", err)
			return nil, cfg, 1
		}
	}
	db, err := database.OpenWith(ctx, cfg.DatabaseURL, database.Options{CheckSchema: cfg.Migrate == "off"})
	if err != nil {
		fmt.Fprintf(stderr, "verifier: %v\n", err)
		return nil, cfg, 1
	}
	return db, cfg, 0
}

func isHelp(a string) bool {
	return a == "-h" || a == "-help" || a == "--help" || a == "help"
}
