package database

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

type groupBundle struct {
	ctx context.Context
	d   routed
}

// setupGroups opens the writer and readers on a fresh file with a parent
// table p and a child table c whose foreign key is checked at COMMIT.
func setupGroups(t *testing.T) groupBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	path := filepath.Join(t.TempDir(), "v.db")
	wdsn, err := sqliteDSN(path, true)
	require.NoError(t, err)
	rdsn, err := sqliteDSN(path, false)
	require.NoError(t, err)
	w, err := openPool(ctx, wdsn, sqliteWriters)
	require.NoError(t, err)
	r, err := openPool(ctx, rdsn, 2)
	require.NoError(t, err)
	d := newRouted(w, r, nil)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	for _, q := range []string{
		"CREATE TABLE p (id INTEGER PRIMARY KEY)",
		"CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
	} {
		_, err := d.ExecContext(ctx, q)
		require.NoError(t, err)
	}
	return groupBundle{ctx: ctx, d: d}
}

func (b groupBundle) insert(t *testing.T, tx dialect.Tx, q string, id int) {
	t.Helper()
	require.NoError(t, tx.Exec(b.ctx, q, []any{id}, nil))
}

func (b groupBundle) count(t *testing.T, table string) int {
	t.Helper()
	rows, err := b.d.QueryContext(b.ctx, "SELECT count(*) FROM "+table)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var n int
	require.NoError(t, rows.Scan(&n))
	return n
}

// first begins a transaction with ctx and inserts p 1 in it.
func (b groupBundle) first(t *testing.T, ctx context.Context) dialect.Tx {
	t.Helper()
	tx, err := b.d.BeginTx(ctx, nil)
	require.NoError(t, err)
	b.insert(t, tx, "INSERT INTO p (id) VALUES (?)", 1)
	return tx
}

// begin starts a transaction in the background; it gets the writer's turn
// only once the one before gave it back.
func (b groupBundle) begin() <-chan dialect.Tx { return b.beginWith(b.ctx) }

// beginWith is begin with ctx (Urgent or not).
func (b groupBundle) beginWith(ctx context.Context) <-chan dialect.Tx {
	ch := make(chan dialect.Tx, 1)
	go func() {
		tx, err := b.d.BeginTx(ctx, nil)
		if err != nil {
			panic(err)
		}
		ch <- tx
	}()
	return ch
}

// waitQueued waits until n callers wait for the writer's turn.
func (b groupBundle) waitQueued(t *testing.T, n int) {
	t.Helper()
	testkit.Eventually(t, func() bool {
		b.d.t.mu.Lock()
		defer b.d.t.mu.Unlock()
		return len(b.d.t.normal)+len(b.d.t.urgent) == n
	}, "%d callers waiting for the writer", n)
}

// commitAsync commits tx in the background.
func commitAsync(tx dialect.Tx) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- tx.Commit() }()
	return ch
}

// A transaction that commits while another waits for the writer hands it
// the turn and answers once the group's COMMIT did: after the other ended.
func TestGroupCommitsTogether(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		secondEnd func(dialect.Tx) error
		wantP     int
	}{
		{"both commit", func(tx dialect.Tx) error { return tx.Commit() }, 2},
		{"the second rolls back, alone", func(tx dialect.Tx) error { return tx.Rollback() }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupGroups(t)
			first := b.first(t, b.ctx)
			next := b.begin()
			b.waitQueued(t, 1)
			firstDone := commitAsync(first)
			second := testkit.Receive(t, next, "the second transaction")
			// The second has the turn and the group is open: the first's
			// COMMIT has not happened, so its Commit has not returned.
			require.Empty(t, firstDone)
			require.Zero(t, b.count(t, "p"), "nothing committed while the group is open")
			b.insert(t, second, "INSERT INTO p (id) VALUES (?)", 2)
			require.NoError(t, tt.secondEnd(second))
			require.NoError(t, testkit.Receive(t, firstDone, "the first commit"))
			require.Equal(t, tt.wantP, b.count(t, "p"))
		})
	}
}

// An Urgent member commits its group at once, unless the next in line is
// Urgent too, which then commits both; an ordinary one commits with the
// group when the next member is done.
func TestGroupPriorityCommits(t *testing.T) {
	t.Parallel()
	plain := func(ctx context.Context) context.Context { return ctx }
	tests := []struct {
		name       string
		mark, next func(context.Context) context.Context
		atOnce     bool
	}{
		{"ordinary", plain, plain, false},
		{"Urgent", Urgent, plain, true},
		{"Urgent, Urgent next", Urgent, Urgent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupGroups(t)
			first := b.first(t, tt.mark(b.ctx))
			next := b.beginWith(tt.next(b.ctx))
			b.waitQueued(t, 1)
			firstDone := commitAsync(first)
			second := testkit.Receive(t, next, "the second transaction")
			if tt.atOnce {
				require.NoError(t, testkit.Receive(t, firstDone, "the first commit"))
				require.Equal(t, 1, b.count(t, "p"), "committed before the next member ran")
			} else {
				require.Empty(t, firstDone)
				require.Zero(t, b.count(t, "p"), "the group is open")
			}
			b.insert(t, second, "INSERT INTO p (id) VALUES (?)", 2)
			require.NoError(t, second.Commit())
			if !tt.atOnce {
				require.NoError(t, testkit.Receive(t, firstDone, "the first commit"))
			}
			require.Equal(t, 2, b.count(t, "p"))
		})
	}
}

// A COMMIT that fails fails every member of its group, and stores nothing
// of any of them.
func TestGroupCommitFailsEveryMember(t *testing.T) {
	t.Parallel()
	b := setupGroups(t)
	first := b.first(t, b.ctx)
	next := b.begin()
	b.waitQueued(t, 1)
	firstDone := commitAsync(first)
	second := testkit.Receive(t, next, "the second transaction")
	// Checked at COMMIT: no parent 99.
	b.insert(t, second, "INSERT INTO c (id, p) VALUES (1, ?)", 99)
	require.Error(t, second.Commit())
	require.Error(t, testkit.Receive(t, firstDone, "the first commit"), "the first was in the same COMMIT")
	require.Zero(t, b.count(t, "p"))
	require.Zero(t, b.count(t, "c"))

	// The writer goes on with a new group.
	tx, err := b.d.BeginTx(b.ctx, nil)
	require.NoError(t, err)
	b.insert(t, tx, "INSERT INTO p (id) VALUES (?)", 1)
	require.NoError(t, tx.Commit())
	require.Equal(t, 1, b.count(t, "p"))
}

// A raw statement that writes (QueryContext, whose rows go to the caller
// as they are) and waited for the writer commits the open group before it
// runs, so its caller is told it is stored only once it is, and the
// group's members answer.
func TestGroupCommitsBeforeARawStatement(t *testing.T) {
	t.Parallel()
	b := setupGroups(t)
	first := b.first(t, b.ctx)
	plain := make(chan error, 1)
	go func() {
		rows, err := b.d.QueryContext(b.ctx, "INSERT INTO p (id) VALUES (2) RETURNING id")
		if err == nil {
			err = rows.Close()
		}
		plain <- err
	}()
	b.waitQueued(t, 1)
	require.NoError(t, first.Commit())
	require.NoError(t, testkit.Receive(t, plain, "the plain write"))
	require.Equal(t, 2, b.count(t, "p"))
}

// A write outside a transaction through ent's driver (Exec, and Query for
// INSERT … RETURNING) is a member of its own in the open group: it shares
// the group's COMMIT and answers once that happened, and one that fails
// undoes only itself.
func TestGroupTakesPlainWrites(t *testing.T) {
	t.Parallel()
	insert := "INSERT INTO p (id) VALUES (?)"
	tests := []struct {
		name  string
		write func(b groupBundle, id int) error
	}{
		{"ExecContext", func(b groupBundle, id int) error {
			_, err := b.d.ExecContext(b.ctx, insert, id)
			return err
		}},
		{"Exec", func(b groupBundle, id int) error { return b.d.Exec(b.ctx, insert, []any{id}, nil) }},
		{"Query", func(b groupBundle, id int) error {
			var rows entsql.Rows
			if err := b.d.Query(b.ctx, insert+" RETURNING id", []any{id}, &rows); err != nil {
				return err
			}
			defer rows.Close()
			got, err := entsql.ScanInt(rows)
			if err == nil && got != id {
				err = fmt.Errorf("RETURNING gave %d", got)
			}
			return err
		}},
	}
	for _, tt := range tests {
		for _, clash := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s clash=%v", tt.name, clash), func(t *testing.T) {
				t.Parallel()
				b := setupGroups(t)
				first := b.first(t, b.ctx)
				id := 2
				if clash {
					id = 1 // the first's row, seen within the group
				}
				plain := make(chan error, 1)
				go func() { plain <- tt.write(b, id) }()
				b.waitQueued(t, 1)
				firstDone := commitAsync(first)
				if clash {
					require.Error(t, testkit.Receive(t, plain, "the plain write"))
					require.NoError(t, testkit.Receive(t, firstDone, "the first commit"), "the plain write's failure is its own")
					require.Equal(t, 1, b.count(t, "p"))
					return
				}
				require.NoError(t, testkit.Receive(t, plain, "the plain write"))
				require.NoError(t, testkit.Receive(t, firstDone, "the first commit"))
				require.Equal(t, 2, b.count(t, "p"))
			})
		}
	}
}

// Rows of a plain write hold its group open until read: the group commits
// after them, with the members before.
func TestGroupCommitsAfterPlainWriteRows(t *testing.T) {
	t.Parallel()
	b := setupGroups(t)
	first := b.first(t, b.ctx)
	rowsCh := make(chan entsql.Rows, 1)
	go func() {
		var rows entsql.Rows
		if err := b.d.Query(b.ctx, "INSERT INTO p (id) VALUES (2) RETURNING id", []any{}, &rows); err != nil {
			panic(err)
		}
		rowsCh <- rows
	}()
	b.waitQueued(t, 1)
	firstDone := commitAsync(first)
	rows := testkit.Receive(t, rowsCh, "the rows")
	require.Empty(t, firstDone, "the group is open while the rows are")
	require.Zero(t, b.count(t, "p"))
	got, err := entsql.ScanInt(rows)
	require.NoError(t, err)
	require.Equal(t, 2, got)
	require.NoError(t, rows.Err(), "the commit's error, had there been one")
	require.NoError(t, testkit.Receive(t, firstDone, "the first commit"))
	require.Equal(t, 2, b.count(t, "p"))
	require.NoError(t, rows.Close())
}

// A transaction used after it ended says so.
func TestGroupMemberEnded(t *testing.T) {
	t.Parallel()
	b := setupGroups(t)
	tx, err := b.d.BeginTx(b.ctx, nil)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.ErrorIs(t, tx.Commit(), errTxDone)
	require.ErrorIs(t, tx.Rollback(), errTxDone)
	require.ErrorIs(t, tx.Exec(b.ctx, "INSERT INTO p (id) VALUES (3)", []any{}, nil), errTxDone)
}

// Many writers at once, as under load: transactions that commit, ones that
// roll back, urgent ones and plain statements all end as they would alone.
func TestGroupUnderLoad(t *testing.T) {
	t.Parallel()
	b := setupGroups(t)
	const writers, each = 32, 20
	errs := make(chan error, writers+2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				ctx := b.ctx
				if i%5 == 0 {
					ctx = Urgent(ctx)
				}
				tx, err := b.d.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				id := w*each + i + 1
				if err := tx.Exec(ctx, "INSERT INTO p (id) VALUES (?)", []any{id}, nil); err != nil {
					errs <- err
					return
				}
				var rows entsql.Rows
				if err := tx.Query(ctx, "SELECT count(*) FROM p WHERE id = ?", []any{id}, &rows); err != nil {
					errs <- err
					return
				}
				_ = rows.Close()
				if i%3 == 0 {
					err = tx.Rollback()
				} else {
					err = tx.Commit()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range each {
			if _, err := b.d.ExecContext(b.ctx, "INSERT INTO c (id, p) VALUES (?, NULL)", i+1); err != nil {
				errs <- err
				return
			}
		}
	})
	testkit.Wait(t, &wg, "end of %d grouped writers and the foreign-key writer", writers)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	committed := 0
	for i := range each {
		if i%3 != 0 {
			committed++
		}
	}
	require.Equal(t, writers*committed, b.count(t, "p"))
	require.Equal(t, each, b.count(t, "c"))
}

// A member's savepoint journal stays in memory however many pages the
// member changes: SQLite spilled it past 64 KiB to a temporary file
// (deleted as soon as opened, so only its open descriptor shows it),
// created and written per transaction.
func TestGroupMemberJournalStaysInMemory(t *testing.T) {
	b := setupGroups(t)
	for _, q := range []string{
		"CREATE TABLE blobs (id INTEGER PRIMARY KEY, v BLOB)",
		"WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < 100) INSERT INTO blobs SELECT id, randomblob(4000) FROM n",
	} {
		_, err := b.d.ExecContext(b.ctx, q)
		require.NoError(t, err)
	}
	tx, err := b.d.BeginTx(b.ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	// Each of the 100 pages is changed in the member's savepoint, whose
	// journal keeps their originals: 400 KiB.
	require.NoError(t, tx.Exec(b.ctx, "UPDATE blobs SET v = randomblob(4000)", []any{}, nil))
	require.Empty(t, openSQLiteTempFiles(t), "the savepoint's journal spilled to a file")
	require.NoError(t, tx.Commit())
	require.Equal(t, 100, b.count(t, "blobs"))
}

// openSQLiteTempFiles lists this process's open files that were deleted
// while open, as SQLite deletes its temporary files. The test runs alone:
// no parallel test of the package runs beside it.
func openSQLiteTempFiles(t *testing.T) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var found []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasSuffix(target, " (deleted)") {
			found = append(found, target)
		}
	}
	return found
}
