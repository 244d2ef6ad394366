package database

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// routed is the ent driver of a SQLite database: one writer connection and
// a pool of readers on the same file.
//
// SQLite lets one connection write at a time. With one pool of many
// connections, each transaction took the write lock at BEGIN and the
// losers slept in the driver's busy handler (1 to 100 ms steps) while
// holding a pooled connection, so at c=64 most requests waited for a
// connection held by someone asleep. Here writes queue in Go, in
// database/sql's own wait queue for the single writer connection, and
// are handed over the moment it is free; reads under WAL never wait for
// the writer.
//
// Transactions and every statement that is not a plain SELECT go to the
// writer: ent also writes outside transactions (an Update or Delete on the
// client), and reads inside a transaction run on that transaction, so they
// see its own writes.
type routed struct {
	w, r *entsql.Driver
}

var _ dialect.Driver = routed{}

// readOnly reports whether query is a plain SELECT, the only statements
// sent to readers. Anything else (INSERT … RETURNING, which ent sends
// through Query, WITH, PRAGMA) goes to the writer.
func readOnly(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "select")
}

func (d routed) Exec(ctx context.Context, query string, args, v any) error {
	return d.w.Exec(ctx, query, args, v)
}

func (d routed) Query(ctx context.Context, query string, args, v any) error {
	if readOnly(query) {
		return d.r.Query(ctx, query, args, v)
	}
	return d.w.Query(ctx, query, args, v)
}

func (d routed) Tx(ctx context.Context) (dialect.Tx, error) { return d.w.Tx(ctx) }

// BeginTx is what ent's Client.BeginTx looks for.
func (d routed) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	return d.w.BeginTx(ctx, opts)
}

func (d routed) Close() error { return errors.Join(d.w.Close(), d.r.Close()) }

func (d routed) Dialect() string { return dialect.SQLite }
