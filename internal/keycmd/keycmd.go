// Package keycmd is the operator's command for the keys that sign receipts
// and sign-in tokens (package signer):
//
//	verifier signing-key list
//	verifier signing-key rotate
//
// rotate makes a new key, kept in the database, the one that signs, and
// retires the previous one, say after a copy of the database leaked. The
// retired key stays in the JWKS, and tokens it signed keep verifying, until
// the last of them has expired; running replicas sign with the new key
// within signer.ReloadWithin, with no restart. With SIGNING_KEY_FILE the
// key is the file's and rotate refuses: replace the file and restart.
package keycmd

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/opcmd"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
)

// Usage is the command's synopsis.
const Usage = `Usage:
  verifier signing-key list     list the signing keys: current, and retired until their tokens expire
  verifier signing-key rotate   sign with a new key from now on; the old one verifies until its tokens expire

The settings (DATABASE_URL, TOKEN_SEAL_KEY, RECEIPT_TTL and SESSION_TTL above
all) are read from the environment, as the service reads them. With
SIGNING_KEY_FILE the key is that file's: rotate by replacing the file and
restarting the service.
`

// Main runs the command with args (what follows "signing-key"), reading the
// settings with getenv, and returns the exit status.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	// The arguments first: a typo must not open (and so migrate) the
	// database before it is reported.
	cmd, status := parseCommand(args, stderr)
	if cmd == nil {
		return status
	}
	db, cfg, status := opcmd.Open(ctx, getenv, stderr, func(cfg config.Config) error {
		if cmd.rotates && cfg.SigningKeyFile != "" {
			return fmt.Errorf("signing-key rotate: %w", signer.ErrKeyFromFile)
		}
		return nil
	})
	if db == nil {
		return status
	}
	defer db.Close()
	keys, err := admin(ctx, cfg, db.Ent, cmd.rotates, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: %v\n", err)
		return 1
	}
	return cmd.run(ctx, keys, stdout, stderr)
}

// admin is the key table as the service's settings see it. Only a rotation
// needs the seal box (the new key is sealed under the service's
// TOKEN_SEAL_KEY); listing reads no private half and writes nothing.
func admin(ctx context.Context, cfg config.Config, db *ent.Client, rotates bool, stderr io.Writer) (*signer.Admin, error) {
	o := signer.Options{
		DB:         db,
		Issuer:     cfg.PublicURL,
		Audience:   cfg.JWTAudience,
		ReceiptTTL: cfg.ReceiptTTL,
		SessionTTL: cfg.SessionTTL,
		// What goes wrong is said on stderr; what went right, by run.
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if rotates {
		key, err := seal.KeyFor(ctx, db, cfg.TokenSealKey)
		if err != nil {
			return nil, err
		}
		if o.Seal, err = seal.New(key); err != nil {
			return nil, err
		}
	}
	return signer.NewAdmin(o)
}

// command is a parsed signing-key command.
type command struct {
	// rotates: it writes a key, so it needs the service's seal box and
	// no SIGNING_KEY_FILE.
	rotates bool
	run     func(ctx context.Context, keys *signer.Admin, stdout, stderr io.Writer) int
}

// parseCommand reads args into the command they ask for, or reports on
// stderr what is wrong with them (or the usage asked for) and returns a
// nil command and the exit status.
func parseCommand(args []string, stderr io.Writer) (*command, int) {
	if status, done := opcmd.Help(args, Usage, stderr); done {
		return nil, status
	}
	var cmd *command
	switch args[0] {
	case "list":
		cmd = &command{run: list}
	case "rotate":
		cmd = &command{rotates: true, run: rotate}
	default:
		fmt.Fprintf(stderr, "verifier: unknown signing-key command %q\n", args[0])
		fmt.Fprint(stderr, Usage)
		return nil, 2
	}
	fs := flag.NewFlagSet("signing-key "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, Usage) }
	if status, done := opcmd.Parse(fs, args[1:]); done {
		return nil, status
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "verifier: signing-key %s takes no arguments, got %q\n", args[0], fs.Arg(0))
		fs.Usage()
		return nil, 2
	}
	return cmd, 0
}

func list(ctx context.Context, keys *signer.Admin, stdout, stderr io.Writer) int {
	ks, err := keys.List(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: listing signing keys: %v\n", err)
		return 1
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tCREATED\tSTATE\tRETIRED AT\tLISTED UNTIL")
	for _, k := range ks {
		state, retired, until := "current", "-", "while current"
		if !k.Current {
			state = "retired"
		}
		if k.RetiredAt != nil {
			retired = stamp(*k.RetiredAt)
		}
		if k.ListedUntil != nil {
			until = stamp(*k.ListedUntil)
			if !now.Before(*k.ListedUntil) {
				until += " (no longer listed)"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.Kid, stamp(k.CreatedAt), state, retired, until)
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	if len(ks) == 0 {
		fmt.Fprintln(stdout, "(no signing key yet: the service makes one at its first start)")
	}
	return 0
}

func rotate(ctx context.Context, keys *signer.Admin, stdout, stderr io.Writer) int {
	before, err := keys.List(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: listing signing keys: %v\n", err)
		return 1
	}
	kid, err := keys.Rotate(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: signing-key rotate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "new current key %s: running replicas sign with it within %s, no restart needed\n", kid, signer.ReloadWithin)
	after, err := keys.List(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: listing signing keys: %v\n", err)
		return 1
	}
	retired := false
	for _, old := range before {
		for _, k := range after {
			if old.Current && k.Kid == old.Kid && k.ListedUntil != nil {
				fmt.Fprintf(stdout, "retired %s: listed in the JWKS, and its tokens accepted, until %s\n", k.Kid, stamp(*k.ListedUntil))
				retired = true
			}
		}
	}
	if !retired {
		fmt.Fprintln(stdout, "(no key was current before: nothing retired)")
	}
	return 0
}

// stamp is t as the list shows it: UTC to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
