package docs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestContractCopyIsCurrent: docs/api-contract.md is the repository's copy
// of the shared contract (a clone has no ../shared), so it must not drift
// from it. The shared file sits beside the repository (../shared from the
// root), or further up for a git worktree; where none is found (a clone on
// its own) there is nothing to compare with.
func TestContractCopyIsCurrent(t *testing.T) {
	copied, err := os.ReadFile("api-contract.md")
	require.NoError(t, err)
	dir, err := filepath.Abs("..") // the repository's root
	require.NoError(t, err)
	for {
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no shared/api-contract.md beside the repository or above it: nothing to compare docs/api-contract.md with")
		}
		dir = parent
		shared, err := os.ReadFile(filepath.Join(dir, "shared", "api-contract.md"))
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		// Not require.Equal: the two whole files would fill the log.
		if path := filepath.Join(dir, "shared", "api-contract.md"); !bytes.Equal(shared, copied) {
			t.Fatalf("docs/api-contract.md differs from %s from line %d: copy it over (cp %[1]s docs/)", path, firstDifference(shared, copied))
		}
		return
	}
}

// firstDifference is the number of the first line where a and b differ.
func firstDifference(a, b []byte) int {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}
