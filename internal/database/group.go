package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
)

// maxGroup bounds the transactions that share one SQLite transaction: the
// first of a group answers only once the last has run, so the bound is
// what a request may wait for beyond its own turn (at c=64 a verifyEmail
// body takes about 0.2 ms of the writer: some 6 ms for 32).
const maxGroup = 32

// groups commits the writer's transactions in groups. A transaction
// (member) runs inside a SAVEPOINT of one open SQLite transaction; when it
// commits, and others wait for the writer's turn, the turn passes on with
// the SQLite transaction still open, and the member's Commit returns once
// the group's COMMIT did. The group commits when nobody waits for the
// turn, when maxGroup members committed, or when an urgent member (the
// outbox relay, which everyone's events wait for; a SENT record) commits
// with no other urgent one waiting. Urgent writes queued together share a
// COMMIT: the last of k of them waits for k-1 short members, not k-1
// COMMITs (the mail backlog drained 7–15 % faster, make bench, A/B).
//
// Why: at c=64 verifyEmail is bounded by the single writer, and half of a
// verification's time on it was its COMMIT (the write of its WAL frames).
// One COMMIT for up to maxGroup writes the pages they share once.
//
// A member's failure stays its own: Rollback undoes its savepoint only.
// What is shared is the COMMIT: if it fails, every member of the group
// gets the error and nothing of theirs is stored, as a transaction that
// failed to commit. Members see the writes of the members before them in
// the group, as if those had committed (they commit together or not at
// all). Statements of a member run without its context's cancellation:
// SQLite interrupting a write rolls back the whole transaction, the other
// members' work included; they are short, the write lock being held.
//
// Only the holder of the writer's turn touches open.
type groups struct {
	w    *stmts
	t    *turns
	open *group
}

// group is one SQLite transaction shared by members.
type group struct {
	tx      *inTx
	members int // committed, waiting for the COMMIT
	// broken is why the transaction can no longer commit (a savepoint
	// that would not roll back: SQLite ended the transaction).
	broken error
	done   chan struct{}
	err    error // of the COMMIT, once done is closed
}

const (
	savepoint = "SAVEPOINT member"
	releaseSP = "RELEASE member"
	undoSP    = "ROLLBACK TO member"
)

// begin starts a member; the caller holds the writer's turn.
func (gs *groups) begin(ctx context.Context) (*member, error) {
	if gs.open != nil && gs.open.broken != nil {
		gs.flush()
	}
	if gs.open == nil {
		gs.w.prepareWanted(ctx)
		// The SQLite transaction outlives the member that opened it:
		// database/sql would roll it back when that member's context
		// ends. Its BEGIN IMMEDIATE waits at most busy_timeout for a
		// lock held by another process.
		tx, err := gs.w.db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			return nil, err
		}
		gs.open = &group{tx: &inTx{tx: tx, c: gs.w}, done: make(chan struct{})}
	}
	g := gs.open
	if _, err := g.tx.ExecContext(context.WithoutCancel(ctx), savepoint); err != nil {
		return nil, fmt.Errorf("database: begin: %w", err)
	}
	return &member{g: g, gs: gs, urgent: isUrgent(ctx)}, nil
}

// flush ends the open group: COMMIT, or ROLLBACK if it is broken or no
// member committed, and tells the members. The caller holds the turn.
func (gs *groups) flush() {
	g := gs.open
	if g == nil {
		return
	}
	gs.open = nil
	switch {
	case g.broken != nil:
		_ = g.tx.tx.Rollback()
		g.err = fmt.Errorf("database: a write committed together with this one ended the transaction: %w", g.broken)
	case g.members == 0:
		g.err = g.tx.tx.Rollback()
	default:
		g.err = g.tx.tx.Commit()
	}
	close(g.done)
}

// member is one transaction of a group, the dialect.Tx ent runs on.
type member struct {
	g      *group
	gs     *groups
	urgent bool
	ended  bool
	mu     sync.Mutex
}

var _ dialect.Tx = (*member)(nil)

// errTxDone is what a member says when used after it ended.
var errTxDone = errors.New("database: transaction has already been committed or rolled back")

func (m *member) live() (*inTx, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended {
		return nil, errTxDone
	}
	return m.g.tx, nil
}

func (m *member) end() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	was := m.ended
	m.ended = true
	return !was
}

func (m *member) Exec(ctx context.Context, query string, args, v any) error {
	tx, err := m.live()
	if err != nil {
		return err
	}
	return entsql.Conn{ExecQuerier: tx}.Exec(context.WithoutCancel(ctx), query, args, v)
}

func (m *member) Query(ctx context.Context, query string, args, v any) error {
	tx, err := m.live()
	if err != nil {
		return err
	}
	rows, ok := v.(*entsql.Rows)
	if !ok {
		return fmt.Errorf("database: invalid type %T, expect *sql.Rows", v)
	}
	argv, ok := args.([]any)
	if !ok {
		return fmt.Errorf("database: invalid type %T, expect []any for args", args)
	}
	return tx.query(context.WithoutCancel(ctx), query, argv, rows)
}

// Commit releases the member's savepoint and returns once the group's
// COMMIT did, with its error.
func (m *member) Commit() error {
	if !m.end() {
		return errTxDone
	}
	g := m.g
	if _, err := g.tx.ExecContext(context.Background(), releaseSP); err != nil {
		// The savepoint is still open or SQLite ended the transaction:
		// either way the group cannot commit.
		g.broken = err
		m.gs.t.release()
		return fmt.Errorf("database: commit: %w", err)
	}
	g.members++
	// An urgent one waiting joins the group and commits it.
	if (m.urgent && !m.gs.t.urgentWaiting()) || g.members >= maxGroup {
		m.gs.flush()
	}
	m.gs.t.release()
	<-g.done
	return g.err
}

// Rollback undoes the member's writes; the group goes on.
func (m *member) Rollback() error {
	if !m.end() {
		return errTxDone
	}
	g := m.g
	ctx := context.Background()
	_, err := g.tx.ExecContext(ctx, undoSP)
	if err == nil {
		_, err = g.tx.ExecContext(ctx, releaseSP)
	}
	if err != nil {
		g.broken = err
	}
	m.gs.t.release()
	return nil
}

// ExecContext and QueryContext are what ent's Tx.ExecContext and
// Tx.QueryContext look for (statements ent's API cannot express).
func (m *member) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tx, err := m.live()
	if err != nil {
		return nil, err
	}
	return tx.ExecContext(context.WithoutCancel(ctx), query, args...)
}

func (m *member) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	tx, err := m.live()
	if err != nil {
		return nil, err
	}
	return tx.QueryContext(context.WithoutCancel(ctx), query, args...)
}
