package database

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

// Processes opening a new file together race to switch it to WAL, and
// SQLite answers the loser's switch SQLITE_BUSY at once, whatever
// busy_timeout says (4 replicas starting together on a fresh file failed
// about one start in ten). Each round opens one new file from several
// connections at once; none may fail. The race is rare per round (about
// 2 in 100 with 8 at once, measured), so the rounds are many.
func TestConnectRacesForWAL(t *testing.T) {
	t.Parallel()
	const rounds, together = 300, 8
	ctx := context.Background()
	dir := t.TempDir()
	for i := range rounds {
		dsn, err := sqliteDSN(filepath.Join(dir, fmt.Sprintf("v%d.db", i)), true)
		require.NoError(t, err)
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for range together {
			wg.Go(func() {
				db, err := openPool(ctx, dsn, 1)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				db.Close()
			})
		}
		testkit.Wait(t, &wg, "end of %d pools opening one database at once, round %d", together, i)
		require.Empty(t, errs, "round %d", i)
	}
}
