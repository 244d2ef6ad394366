package database

import (
	"context"
	"database/sql"
	"errors"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// reserved is the ent driver of a PostgreSQL database: the pool requests
// share, and a few connections of its own for Urgent work, so the outbox
// relay's bookkeeping, which every event waits on, never queues behind
// the requests for a connection. PostgreSQL takes concurrent writes, so
// unlike SQLite's single writer nothing needs ordering: urgent work only
// needs connections nobody else holds.
type reserved struct {
	*entsql.Driver // the shared pool
	urgent         *entsql.Driver
}

var _ dialect.Driver = reserved{}

// pick is the pool for ctx's work.
func (d reserved) pick(ctx context.Context) *entsql.Driver {
	if isUrgent(ctx) {
		return d.urgent
	}
	return d.Driver
}

func (d reserved) Exec(ctx context.Context, query string, args, v any) error {
	return d.pick(ctx).Exec(ctx, query, args, v)
}

func (d reserved) Query(ctx context.Context, query string, args, v any) error {
	return d.pick(ctx).Query(ctx, query, args, v)
}

// ExecContext and QueryContext are what ent's Client.ExecContext and
// QueryContext look for.
func (d reserved) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return d.pick(ctx).ExecContext(ctx, query, args...)
}

func (d reserved) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.pick(ctx).QueryContext(ctx, query, args...)
}

func (d reserved) Tx(ctx context.Context) (dialect.Tx, error) { return d.pick(ctx).Tx(ctx) }

// BeginTx is what ent's Client.BeginTx looks for.
func (d reserved) BeginTx(ctx context.Context, opts *sql.TxOptions) (dialect.Tx, error) {
	return d.pick(ctx).BeginTx(ctx, opts)
}

func (d reserved) Close() error { return errors.Join(d.Driver.Close(), d.urgent.Close()) }
