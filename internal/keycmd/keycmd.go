// Package keycmd is the operator's command for the keys that sign receipts
// and sign-in tokens (package signer):
//
//	verifier signing-key list
//	verifier signing-key rotate [-revoke]
//
// rotate publishes a new key, kept in the database, waits until every
// running replica lists it in its JWKS and every app's or proxy's cached
// copy has expired (signer.PublishFor, about a minute), then makes it the
// one that signs and retires the previous one: apps that fetch the JWKS
// from any replica know the new key before they meet a token of it.
// The retired key stays in the JWKS, and tokens it signed keep verifying,
// until the last of them has expired; with -revoke (after a leak) it and
// every other key still listed leave the JWKS and stop verifying within
// signer.ReloadWithin, which signs everyone out and voids their receipts.
// Running replicas follow with no restart. With SIGNING_KEY_FILE the key is
// the file's and rotate refuses: replace the file and restart.
package keycmd

import (
	"context"
	"errors"
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
  verifier signing-key rotate   publish a new key, wait until every replica and cached JWKS lists it
                                (about a minute), then sign with it; the old one verifies until its
                                tokens expire
  verifier signing-key rotate -revoke
                                a new key at once, and the old keys stop verifying at once (a leaked
                                key): everyone is signed out and unexpired receipts no longer verify

The settings (DATABASE_URL, TOKEN_SEAL_KEY, RECEIPT_TTL and SESSION_TTL above
all) are read from the environment, as the service reads them. With
SIGNING_KEY_FILE the key is that file's: rotate by replacing the file and
restarting the service.
`

// Main runs the command with args (what follows "signing-key"), reading the
// settings with getenv, and returns the exit status.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, getenv, out{stdout: stdout, stderr: stderr, sleep: sleep})
}

// runWith is Main writing to o and waiting with o.sleep.
func runWith(ctx context.Context, args []string, getenv func(string) string, o out) int {
	stderr := o.stderr
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
	return cmd.run(ctx, keys, o)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// out is where a command writes, and how it waits (tests wait on a clock
// of their own).
type out struct {
	stdout, stderr io.Writer
	sleep          func(context.Context, time.Duration) error
}

// admin is the key table as the service's settings see it. Only a rotation
// needs the seal box (the new key is sealed under the service's
// TOKEN_SEAL_KEY); listing reads no private half and writes no key (the
// database is opened as the service opens it: migrated unless
// MIGRATE=off).
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
		key, err := rotationSealKey(ctx, cfg, db)
		if err != nil {
			return nil, err
		}
		if o.Seal, err = seal.New(key); err != nil {
			return nil, err
		}
	}
	return signer.NewAdmin(o)
}

// errNoSealKey is why rotate refuses without TOKEN_SEAL_KEY when the
// database keeps no seal key but has a signing key: the service seals with
// its TOKEN_SEAL_KEY.
var errNoSealKey = errors.New("the database keeps no seal key, so the service runs with TOKEN_SEAL_KEY: rotate with the TOKEN_SEAL_KEY the service runs with")

// rotationSealKey is the key the new signing key is sealed under, as
// seal.KeyFor gives it to the service, except that without TOKEN_SEAL_KEY
// it makes one only where the service never started: on a database whose
// service runs with TOKEN_SEAL_KEY, a key stored here would be one the
// service never reads, and the rotation is refused anyway.
func rotationSealKey(ctx context.Context, cfg config.Config, db *ent.Client) ([]byte, error) {
	if cfg.TokenSealKey != nil {
		return cfg.TokenSealKey, nil
	}
	key, err := seal.Load(ctx, db)
	if err != nil || key != nil {
		return key, err
	}
	if started, err := db.SigningKey.Query().Exist(ctx); err != nil {
		return nil, fmt.Errorf("read the signing keys: %w", err)
	} else if started {
		return nil, errNoSealKey
	}
	return seal.LoadOrCreate(ctx, db)
}

// command is a parsed signing-key command.
type command struct {
	// rotates: it writes a key, so it needs the service's seal box and
	// no SIGNING_KEY_FILE.
	rotates bool
	run     func(ctx context.Context, keys *signer.Admin, o out) int
}

// parseCommand reads args into the command they ask for, or reports on
// stderr what is wrong with them (or the usage asked for) and returns a
// nil command and the exit status.
func parseCommand(args []string, stderr io.Writer) (*command, int) {
	if status, done := opcmd.Help(args, Usage, stderr); done {
		return nil, status
	}
	fs := flag.NewFlagSet("signing-key "+args[0], flag.ContinueOnError)
	var cmd *command
	switch args[0] {
	case "list":
		cmd = &command{run: list}
	case "rotate":
		revoke := fs.Bool("revoke", false, "the old keys stop verifying at once (a leaked key)")
		cmd = &command{rotates: true, run: func(ctx context.Context, keys *signer.Admin, o out) int {
			return rotate(ctx, keys, *revoke, o)
		}}
	default:
		fmt.Fprintf(stderr, "verifier: unknown signing-key command %q\n", args[0])
		fmt.Fprint(stderr, Usage)
		return nil, 2
	}
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

func list(ctx context.Context, keys *signer.Admin, o out) int {
	stdout := o.stdout
	ks, err := keys.List(ctx)
	if err != nil {
		fmt.Fprintf(o.stderr, "verifier: listing signing keys: %v\n", err)
		return 1
	}
	now := time.Now()
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tCREATED\tSTATE\tRETIRED AT\tLISTED UNTIL")
	for _, k := range ks {
		state, retired, until := "current", "-", "while current"
		switch {
		case k.Next:
			state, until = "next", "while next"
		case k.RevokedAt != nil:
			state = "revoked"
		case !k.Current:
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

// countdownEvery is how often rotate says how long it still waits.
const countdownEvery = 10 * time.Second

func rotate(ctx context.Context, keys *signer.Admin, revoke bool, o out) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(o.stderr, "verifier: signing-key rotate: %s: %v\n", what, err)
		return 1
	}
	next, err := keys.Publish(ctx)
	if err != nil {
		return fail("publishing a new key", err)
	}
	fmt.Fprintf(o.stdout, "published %s as the next key: every running replica lists it in its JWKS (and accepts its tokens) within %s; nothing signs with it yet\n", next.Kid, signer.ReloadWithin)
	switch {
	case next.Wait > 0 && revoke:
		// A leaked key goes first: apps that fetched the JWKS before
		// the new key was in it refuse new tokens until they fetch it
		// again, as they would refuse the leaked key's.
		fmt.Fprintf(o.stdout, "-revoke: no wait; apps whose copy of the JWKS is older than this refuse new tokens until they fetch it again (at most %s)\n", next.Wait)
	case next.Wait > 0:
		fmt.Fprintf(o.stdout, "waiting %s so that every replica, and every app or proxy keeping the JWKS, lists it before any replica signs with it (interrupted, it stays listed and unused: run rotate again)\n", next.Wait)
		for left := next.Wait; left > 0; {
			step := min(time.Second, left)
			if err := o.sleep(ctx, step); err != nil {
				return fail("interrupted while waiting; "+next.Kid+" is listed but does not sign: run rotate again", err)
			}
			if left -= step; left > 0 && left%countdownEvery == 0 {
				fmt.Fprintf(o.stdout, "  %s left\n", left)
			}
		}
	}
	done, err := keys.Activate(ctx, next.Kid, revoke)
	if err != nil {
		return fail("making "+next.Kid+" current", err)
	}
	fmt.Fprintf(o.stdout, "new current key %s: running replicas sign with it within %s, no restart needed\n", next.Kid, signer.ReloadWithin)
	switch {
	case revoke && len(done.Revoked) > 0:
		for _, kid := range done.Revoked {
			fmt.Fprintf(o.stdout, "revoked %s: it leaves every replica's JWKS, and its tokens stop verifying, within %s\n", kid, signer.ReloadWithin)
		}
		fmt.Fprintln(o.stdout, "everyone signed in with a revoked key is signed out (their tokens are refused), and unexpired receipts signed with one no longer verify")
	case revoke:
		fmt.Fprintln(o.stdout, "(no key was listed before: nothing revoked)")
	case done.Retired == "":
		fmt.Fprintln(o.stdout, "(no key was current before: nothing retired)")
	default:
		ks, err := keys.List(ctx)
		if err != nil {
			// The rotation is done: only the date is missing.
			fmt.Fprintf(o.stdout, "retired %s: listed in the JWKS until its tokens expire ('verifier signing-key list' says when)\n", done.Retired)
			return 0
		}
		for _, k := range ks {
			if k.Kid == done.Retired && k.ListedUntil != nil {
				fmt.Fprintf(o.stdout, "retired %s: listed in the JWKS, and its tokens accepted, until %s\n", k.Kid, stamp(*k.ListedUntil))
			}
		}
	}
	return 0
}

// stamp is t as the list shows it: UTC to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
