package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
// connection held by someone asleep. Here writes queue in Go for the
// single writer connection (see turns, below) and are handed over the
// moment it is free; reads under WAL never wait for the writer.
//
// Transactions and every statement that is not a plain SELECT go to the
// writer: ent also writes outside transactions (a Create, or an Update or
// Delete on the client), and reads inside a transaction run on that
// transaction, so they see its own writes.
//
// Writes take turns in Go (see turns) before they reach database/sql, so
// the writer's queue is first come first served, with the outbox relay's
// bookkeeping first. Transactions that follow one another on the writer
// share one SQLite transaction and COMMIT (see groups), and so do ent's
// writes outside a transaction, each a transaction of its own; statements
// are prepared once per connection (see stmts).
type routed struct {
	w, r *stmts
	t    *turns
	g    *groups
	// ck checkpoints the WAL off the writer's path (nil: the writer
	// checkpoints as SQLite does by default).
	ck *checkpointer
}

func newRouted(w, r *sql.DB, ck *checkpointer) routed {
	d := routed{w: newStmts(w), r: newStmts(r), t: &turns{}, ck: ck}
	d.g = &groups{w: d.w, t: d.t}
	// Whoever gives the turn back with nobody waiting commits the open
	// group first.
	d.t.idle = d.g.flush
	return d
}

// acquire takes the writer's turn for a raw statement outside a
// transaction (QueryContext, whose rows go to the caller as they are): the
// open group commits first, so the statement is not part of it (its caller
// is told it is stored when it is).
func (d routed) acquire(ctx context.Context) error {
	if err := d.t.acquire(ctx); err != nil {
		return err
	}
	d.g.flush()
	return nil
}

var _ dialect.Driver = routed{}

// readOnly reports whether query is a plain SELECT, the only statements
// sent to readers. Anything else (INSERT … RETURNING, which ent sends
// through Query, WITH, PRAGMA) goes to the writer.
func readOnly(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "select")
}

// Exec runs a write outside a transaction (ent's Create without edges,
// Update and Delete on many rows) as a transaction of its own, so it
// shares the open group's COMMIT instead of paying one alone: it returns
// once that COMMIT did, as a statement in autocommit returns once stored.
func (d routed) Exec(ctx context.Context, query string, args, v any) error {
	m, err := d.member(ctx)
	if err != nil {
		return err
	}
	if err := m.Exec(ctx, query, args, v); err != nil {
		_ = m.Rollback()
		return err
	}
	return m.Commit()
}

// Query runs a plain SELECT on a reader. Anything else is a write (ent's
// Create is INSERT … RETURNING): like Exec it is a transaction of its own
// in the open group, which commits once its rows are read to the end or
// closed (SQLite has made every change at the first step), so the commit's
// error is the rows' error.
func (d routed) Query(ctx context.Context, query string, args, v any) error {
	if readOnly(query) {
		return entsql.Conn{ExecQuerier: pooled{d.r}}.Query(ctx, query, args, v)
	}
	m, err := d.member(ctx)
	if err != nil {
		return err
	}
	if err := m.Query(ctx, query, args, v); err != nil {
		_ = m.Rollback()
		return err
	}
	rows := v.(*entsql.Rows) // m.Query checked
	*rows = entsql.Rows{ColumnScanner: &memberRows{ColumnScanner: rows.ColumnScanner, m: m}}
	return nil
}

// memberRows are the rows of a write that is a member of its own (see
// Query): the member ends when they are read to the end or closed,
// committing unless they failed.
type memberRows struct {
	entsql.ColumnScanner
	m    *member
	done bool
	err  error // of the rows or of the commit, once done
}

func (r *memberRows) Next() bool {
	if r.done {
		return false
	}
	if r.ColumnScanner.Next() {
		return true
	}
	r.finish()
	return false
}

func (r *memberRows) Err() error {
	if r.done {
		return r.err
	}
	return r.ColumnScanner.Err()
}

func (r *memberRows) Close() error {
	r.finish()
	return r.err
}

func (r *memberRows) finish() {
	if r.done {
		return
	}
	r.done = true
	closeErr := r.ColumnScanner.Close()
	if err := errors.Join(r.ColumnScanner.Err(), closeErr); err != nil {
		_ = r.m.Rollback()
		r.err = err
		return
	}
	r.err = r.m.Commit()
}

// ExecContext is what ent's Client.ExecContext looks for; like Exec, it
// commits with the open group.
func (d routed) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	m, err := d.member(ctx)
	if err != nil {
		return nil, err
	}
	res, err := m.ExecContext(ctx, query, args...)
	if err != nil {
		_ = m.Rollback()
		return nil, err
	}
	return res, m.Commit()
}

// QueryContext is what ent's Client.QueryContext looks for. A statement
// that writes gives the writer's turn back when it returns, before its
// rows are read: the rows hold the writer connection, and the next writer
// waits for it in database/sql.
func (d routed) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if readOnly(query) {
		return pooled{d.r}.QueryContext(ctx, query, args...)
	}
	if err := d.acquire(ctx); err != nil {
		return nil, err
	}
	defer d.t.release()
	return pooled{d.w}.QueryContext(ctx, query, args...)
}

func (d routed) Tx(ctx context.Context) (dialect.Tx, error) { return d.BeginTx(ctx, nil) }

// BeginTx is what ent's Client.BeginTx looks for. Transactions on the
// writer are committed in groups (see groups); options are not supported
// (SQLite has one isolation level, and a read-only transaction has no
// business on the writer).
func (d routed) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	if opts != nil && *opts != (sql.TxOptions{}) {
		return nil, fmt.Errorf("database: sqlite: transaction options are not supported")
	}
	return d.member(ctx)
}

// member takes the writer's turn and starts a member of the open group.
func (d routed) member(ctx context.Context) (*member, error) {
	if err := d.t.acquire(ctx); err != nil {
		return nil, err
	}
	m, err := d.g.begin(ctx)
	if err != nil {
		d.t.release()
		return nil, err
	}
	return m, nil
}

func (d routed) Close() error {
	var ckErr error
	if d.ck != nil {
		ckErr = d.ck.close()
	}
	d.w.close()
	d.r.close()
	return errors.Join(ckErr, d.w.db.Close(), d.r.db.Close())
}

func (d routed) Dialect() string { return dialect.SQLite }
