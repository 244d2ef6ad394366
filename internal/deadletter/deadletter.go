// Package deadletter is the operator's command for dead letters: emails the
// mailer gave up on (the recipient was refused for good, the event could
// not be read, or retrying outlived the link), whose delivery record is
// FAILED and keeps the event so it can be sent again.
//
//	verifier dead-letters list [-limit N]
//	verifier dead-letters replay EVENT_ID... | -all
//
// A replay puts the event back into the outbox under its own id and marks
// the record QUEUED, in one transaction; a running service's relay then
// publishes it and the mailer tries again. The service need not stop.
package deadletter

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/opcmd"
)

// Usage is the command's synopsis.
const Usage = `Usage:
  verifier dead-letters list [-limit N]          list emails given up on, oldest first
  verifier dead-letters replay EVENT_ID... | -all send them again

The settings (DATABASE_URL above all) are read from the environment, as the
service reads them.
`

// defaultLimit is how many dead letters list shows unless told.
const defaultLimit = 100

// Main runs the command with args (what follows "dead-letters"), reading the
// settings with getenv, and returns the exit status.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	// The arguments first: a typo must not open (and so migrate) the
	// database before it is reported.
	cmd, status := parseCommand(args, stderr)
	if cmd == nil {
		return status
	}
	db, _, status := opcmd.Open(ctx, getenv, stderr, nil)
	if db == nil {
		return status
	}
	defer db.Close()
	return cmd(ctx, delivery.New(db.Ent, nil), stdout, stderr)
}

// Run runs the command with args on store.
func Run(ctx context.Context, store *delivery.Store, args []string, stdout, stderr io.Writer) int {
	cmd, status := parseCommand(args, stderr)
	if cmd == nil {
		return status
	}
	return cmd(ctx, store, stdout, stderr)
}

// command is a parsed dead-letters command, ready to run on a store.
type command func(ctx context.Context, store *delivery.Store, stdout, stderr io.Writer) int

// parseCommand reads args into the command they ask for, or reports on
// stderr what is wrong with them (or the usage asked for) and returns a
// nil command and the exit status.
func parseCommand(args []string, stderr io.Writer) (command, int) {
	if status, done := opcmd.Help(args, Usage, stderr); done {
		return nil, status
	}
	fs := flag.NewFlagSet("dead-letters "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, Usage) }
	switch args[0] {
	case "list":
		limit := fs.Int("limit", defaultLimit, "show at most this many")
		if status, done := opcmd.Parse(fs, args[1:]); done {
			return nil, status
		}
		switch {
		case fs.NArg() > 0:
			fmt.Fprintf(stderr, "verifier: dead-letters list takes no arguments, got %q\n", fs.Arg(0))
			fs.Usage()
			return nil, 2
		case *limit <= 0:
			fmt.Fprintf(stderr, "verifier: -limit wants 1 or more, got %d\n", *limit)
			fs.Usage()
			return nil, 2
		}
		return func(ctx context.Context, store *delivery.Store, stdout, stderr io.Writer) int {
			return list(ctx, store, *limit, stdout, stderr)
		}, 0
	case "replay":
		all := fs.Bool("all", false, "replay every dead letter")
		if status, done := opcmd.Parse(fs, args[1:]); done {
			return nil, status
		}
		if *all == (fs.NArg() > 0) {
			fmt.Fprintln(stderr, "verifier: give the event ids to replay, or -all")
			fs.Usage()
			return nil, 2
		}
		return func(ctx context.Context, store *delivery.Store, stdout, stderr io.Writer) int {
			return replay(ctx, store, *all, fs.Args(), stdout, stderr)
		}, 0
	}
	fmt.Fprintf(stderr, "verifier: unknown dead-letters command %q\n", args[0])
	fmt.Fprint(stderr, Usage)
	return nil, 2
}

func list(ctx context.Context, store *delivery.Store, limit int, stdout, stderr io.Writer) int {
	recs, err := store.List(ctx, delivery.Failed, limit)
	if err != nil {
		fmt.Fprintf(stderr, "verifier: listing dead letters: %v\n", err)
		return 1
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT ID\tKIND\tADDRESS\tATTEMPTS\tFAILED AT\tREASON")
	for _, r := range recs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", r.EventID, r.Kind, r.Address, r.Attempts, r.UpdatedAt.UTC().Format(time.RFC3339), r.Reason)
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	if len(recs) == limit {
		fmt.Fprintf(stdout, "(the first %d; -limit shows more)\n", limit)
	}
	return 0
}

func replay(ctx context.Context, store *delivery.Store, all bool, ids []string, stdout, stderr io.Writer) int {
	if all {
		n, err := store.ReplayAll(ctx)
		fmt.Fprintf(stdout, "replayed %d dead letters\n", n)
		if err != nil {
			fmt.Fprintf(stderr, "verifier: replay stopped: %v\n", err)
			return 1
		}
		return 0
	}
	status := 0
	for _, id := range ids {
		if err := store.Replay(ctx, id); err != nil {
			fmt.Fprintf(stderr, "verifier: %v\n", err)
			status = 1
			continue
		}
		fmt.Fprintf(stdout, "replayed %s\n", id)
	}
	return status
}
