package database

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

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
//
// Writes take turns in Go (see turns) before they reach database/sql, so
// the writer's queue is first come first served, with the outbox relay's
// bookkeeping first.
type routed struct {
	w, r *entsql.Driver
	t    *turns
}

var _ dialect.Driver = routed{}

// writerTx is a transaction on the writer; it gives the writer's turn
// back when it ends.
type writerTx struct {
	dialect.Tx
	once sync.Once
	t    *turns
}

func (tx *writerTx) Commit() error {
	defer tx.done()
	return tx.Tx.Commit()
}

func (tx *writerTx) Rollback() error {
	defer tx.done()
	return tx.Tx.Rollback()
}

func (tx *writerTx) done() { tx.once.Do(tx.t.release) }

// ExecContext and QueryContext are what ent's Tx.ExecContext and
// Tx.QueryContext look for (statements ent's API cannot express).
func (tx *writerTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.Tx.(*entsql.Tx).ExecContext(ctx, query, args...)
}

func (tx *writerTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.Tx.(*entsql.Tx).QueryContext(ctx, query, args...)
}

// readOnly reports whether query is a plain SELECT, the only statements
// sent to readers. Anything else (INSERT … RETURNING, which ent sends
// through Query, WITH, PRAGMA) goes to the writer.
func readOnly(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "select")
}

func (d routed) Exec(ctx context.Context, query string, args, v any) error {
	if err := d.t.acquire(ctx); err != nil {
		return err
	}
	defer d.t.release()
	return d.w.Exec(ctx, query, args, v)
}

func (d routed) Query(ctx context.Context, query string, args, v any) error {
	if readOnly(query) {
		return d.r.Query(ctx, query, args, v)
	}
	if err := d.t.acquire(ctx); err != nil {
		return err
	}
	defer d.t.release()
	return d.w.Query(ctx, query, args, v)
}

// ExecContext is what ent's Client.ExecContext looks for.
func (d routed) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.t.release()
	return d.w.ExecContext(ctx, query, args...)
}

// QueryContext is what ent's Client.QueryContext looks for. A statement
// that writes gives the writer's turn back when it returns, before its
// rows are read: the rows hold the writer connection, and the next writer
// waits for it in database/sql.
func (d routed) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if readOnly(query) {
		return d.r.QueryContext(ctx, query, args...)
	}
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.t.release()
	return d.w.QueryContext(ctx, query, args...)
}

func (d routed) Tx(ctx context.Context) (dialect.Tx, error) { return d.BeginTx(ctx, nil) }

// BeginTx is what ent's Client.BeginTx looks for.
func (d routed) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	tx, err := d.w.BeginTx(ctx, opts)
	if err != nil {
		d.t.release()
		return nil, err
	}
	return &writerTx{Tx: tx, t: d.t}, nil
}

func (d routed) Close() error { return errors.Join(d.w.Close(), d.r.Close()) }

func (d routed) Dialect() string { return dialect.SQLite }
