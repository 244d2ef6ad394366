package database

import (
	"context"
	"database/sql"
	"sync"

	entsql "entgo.io/ent/dialect/sql"
	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// stmtCacheSize bounds the prepared statements kept per pool. ent builds
// the same text for the same call, so the service uses a few dozen; the
// rest are IN (…) lists of every length the relay happened to claim, which
// the least recently used order lets go first.
const stmtCacheSize = 256

// stmts prepares each statement text once per pool and keeps it, so SQLite
// parses and plans it once per connection instead of on every call. ent
// prepares nothing and the driver keeps nothing between calls: at c=64 the
// parser (sqlite3RunParser) took about a fifth of the service's CPU, most
// of it on the single writer, where it is time every other write waits.
//
// A *sql.Stmt prepared on the pool is safe for concurrent use: database/sql
// runs it on a free connection, preparing it there the first time. A
// transaction reuses the driver statement already prepared on its own
// connection (sql.Tx.StmtContext).
type stmts struct {
	db *sql.DB

	mu    sync.Mutex // never held while waiting for a connection
	cache *simplelru.LRU[string, *cached]
	// wanted are texts a transaction ran unprepared: preparing on the
	// pool needs a free connection, and the writer's one connection is the
	// transaction's. The writer prepares them at its next turn, before it
	// begins (prepareWanted).
	wanted map[string]struct{}
}

// cached is a prepared statement and the calls running it. An evicted
// statement closes when its last call returns: database/sql fails a call
// on a closed statement, but keeps a closed statement's driver statements
// for the rows and transactions already using it.
type cached struct {
	s       *sql.Stmt
	refs    int
	evicted bool
}

func newStmts(db *sql.DB) *stmts {
	c := &stmts{db: db, wanted: map[string]struct{}{}}
	c.cache, _ = simplelru.NewLRU(stmtCacheSize, func(_ string, e *cached) {
		e.evicted = true
		if e.refs == 0 {
			_ = e.s.Close()
		}
	})
	return c
}

// get returns query prepared on the pool and a func to call once done with
// it, or nil if it does not prepare (the caller then runs the text as
// before, and gets the same error). The lock is never held while
// preparing: that needs a free connection, and the calls holding the
// connections need the lock to say they are done (on the readers that
// was a deadlock until the requests' contexts ended).
func (c *stmts) get(ctx context.Context, query string) (*sql.Stmt, func()) {
	c.mu.Lock()
	e, ok := c.cache.Get(query)
	if ok {
		defer c.mu.Unlock()
		return c.refLocked(e)
	}
	c.mu.Unlock()
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refLocked(c.addLocked(query, s))
}

// lookup is get for a caller that holds the pool's only connection (a
// transaction on the writer): it never prepares, and notes a miss for
// prepareWanted.
func (c *stmts) lookup(query string) (*sql.Stmt, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache.Get(query)
	if !ok {
		if len(c.wanted) < stmtCacheSize {
			c.wanted[query] = struct{}{}
		}
		return nil, nil
	}
	return c.refLocked(e)
}

// prepareWanted prepares what transactions missed. The caller holds the
// writer's turn with no transaction open, so the connection is free.
func (c *stmts) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	var qs []string
	for q := range c.wanted {
		if !c.cache.Contains(q) {
			qs = append(qs, q)
		}
	}
	clear(c.wanted)
	c.mu.Unlock()
	for _, q := range qs {
		s, err := c.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.addLocked(q, s)
		c.mu.Unlock()
	}
}

// addLocked caches s for query, unless another caller prepared it
// meanwhile: then s closes and theirs is returned.
func (c *stmts) addLocked(query string, s *sql.Stmt) *cached {
	if e, ok := c.cache.Get(query); ok {
		_ = s.Close()
		return e
	}
	e := &cached{s: s}
	c.cache.Add(query, e)
	return e
}

func (c *stmts) refLocked(e *cached) (*sql.Stmt, func()) {
	e.refs++
	return e.s, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.refs--; e.refs == 0 && e.evicted {
			_ = e.s.Close()
		}
	}
}

// close closes every cached statement; the pool closes after.
func (c *stmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache.Purge()
}

// pooled is the ExecQuerier of a pool that runs cached statements.
type pooled struct{ c *stmts }

func (p pooled) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s, done := p.c.get(ctx, query); s != nil {
		defer done()
		return s.ExecContext(ctx, args...)
	}
	return p.c.db.ExecContext(ctx, query, args...)
}

// QueryContext's rows keep the statement open until they close, whatever
// the cache does meanwhile (database/sql counts them).
func (p pooled) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s, done := p.c.get(ctx, query); s != nil {
		defer done()
		return s.QueryContext(ctx, args...)
	}
	return p.c.db.QueryContext(ctx, query, args...)
}

// inTx is the ExecQuerier of a transaction that runs cached statements.
//
// One driver statement must not run twice at once: a second run while the
// rows of the first are still open would reset it under them. On a pool
// database/sql never lets that happen (a connection with open rows is
// busy), but a transaction has one connection, so a query whose text
// still has rows open in this transaction runs unprepared.
type inTx struct {
	tx *sql.Tx
	c  *stmts

	mu   sync.Mutex
	open map[string]int // query → rows not yet closed
}

func (t *inTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryContext runs unprepared: its rows go to the caller as they are, so
// they cannot be counted until closed.
func (t *inTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, query, args...)
}

// stmt is query's cached statement bound to the transaction, or nil if
// it does not prepare or has rows open in this transaction. The
// transaction keeps it open until the transaction ends.
func (t *inTx) stmt(ctx context.Context, query string) *sql.Stmt {
	t.mu.Lock()
	busy := t.open[query] > 0
	t.mu.Unlock()
	if busy {
		return nil
	}
	s, done := t.c.lookup(query)
	if s == nil {
		return nil
	}
	defer done()
	return t.tx.StmtContext(ctx, s)
}

// query is QueryContext for ent's Query: it counts the rows open until ent
// closes them.
func (t *inTx) query(ctx context.Context, query string, args []any, rows *entsql.Rows) error {
	s := t.stmt(ctx, query)
	if s == nil {
		r, err := t.tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		*rows = entsql.Rows{ColumnScanner: r}
		return nil
	}
	r, err := s.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.open == nil {
		t.open = map[string]int{}
	}
	t.open[query]++
	t.mu.Unlock()
	*rows = entsql.Rows{ColumnScanner: &countedRows{Rows: r, done: func() {
		t.mu.Lock()
		t.open[query]--
		t.mu.Unlock()
	}}}
	return nil
}

// countedRows calls done once, when closed.
type countedRows struct {
	*sql.Rows
	once sync.Once
	done func()
}

func (r *countedRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.done)
	return err
}
