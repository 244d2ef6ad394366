package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	w, r *stmts
	t    *turns
}

var _ dialect.Driver = routed{}

// writerTx is a transaction on the writer; it gives the writer's turn
// back when it ends.
type writerTx struct {
	*sql.Tx
	q    *inTx
	once sync.Once
	t    *turns
}

var _ dialect.Tx = (*writerTx)(nil)

func (tx *writerTx) Commit() error {
	defer tx.done()
	return tx.Tx.Commit()
}

func (tx *writerTx) Rollback() error {
	defer tx.done()
	return tx.Tx.Rollback()
}

func (tx *writerTx) done() { tx.once.Do(tx.t.release) }

func (tx *writerTx) Exec(ctx context.Context, query string, args, v any) error {
	return entsql.Conn{ExecQuerier: tx.q}.Exec(ctx, query, args, v)
}

func (tx *writerTx) Query(ctx context.Context, query string, args, v any) error {
	rows, ok := v.(*entsql.Rows)
	if !ok {
		return fmt.Errorf("database: invalid type %T, expect *sql.Rows", v)
	}
	argv, ok := args.([]any)
	if !ok {
		return fmt.Errorf("database: invalid type %T, expect []any for args", args)
	}
	return tx.q.query(ctx, query, argv, rows)
}

// ExecContext and QueryContext are what ent's Tx.ExecContext and
// Tx.QueryContext look for (statements ent's API cannot express). Rows
// handed out as they are cannot be counted until closed, so such a query
// runs unprepared (see inTx).
func (tx *writerTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.q.ExecContext(ctx, query, args...)
}

func (tx *writerTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.q.QueryContext(ctx, query, args...)
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
	return entsql.Conn{ExecQuerier: pooled{d.w}}.Exec(ctx, query, args, v)
}

func (d routed) Query(ctx context.Context, query string, args, v any) error {
	if readOnly(query) {
		return entsql.Conn{ExecQuerier: pooled{d.r}}.Query(ctx, query, args, v)
	}
	if err := d.t.acquire(ctx); err != nil {
		return err
	}
	defer d.t.release()
	return entsql.Conn{ExecQuerier: pooled{d.w}}.Query(ctx, query, args, v)
}

// ExecContext is what ent's Client.ExecContext looks for.
func (d routed) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.t.release()
	return pooled{d.w}.ExecContext(ctx, query, args...)
}

// QueryContext is what ent's Client.QueryContext looks for. A statement
// that writes gives the writer's turn back when it returns, before its
// rows are read: the rows hold the writer connection, and the next writer
// waits for it in database/sql.
func (d routed) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if readOnly(query) {
		return pooled{d.r}.QueryContext(ctx, query, args...)
	}
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.t.release()
	return pooled{d.w}.QueryContext(ctx, query, args...)
}

func (d routed) Tx(ctx context.Context) (dialect.Tx, error) { return d.BeginTx(ctx, nil) }

// BeginTx is what ent's Client.BeginTx looks for.
func (d routed) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	d.w.prepareWanted(ctx)
	tx, err := d.w.db.BeginTx(ctx, opts)
	if err != nil {
		d.t.release()
		return nil, err
	}
	return &writerTx{Tx: tx, q: &inTx{tx: tx, c: d.w}, t: d.t}, nil
}

func (d routed) Close() error {
	d.w.close()
	d.r.close()
	return errors.Join(d.w.db.Close(), d.r.db.Close())
}

func (d routed) Dialect() string { return dialect.SQLite }
