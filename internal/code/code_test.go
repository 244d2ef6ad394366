package code

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestWellFormed(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{"000000": true, "123456": true, "12345": false, "1234567": false, "12345a": false, "１２３４５６": false, "": false} {
		require.Equal(t, ok, WellFormed(s), "%q", s)
	}
}

// twoKeys returns hashers under two different seal keys.
func twoKeys(t *testing.T) (h, other *Hasher) {
	t.Helper()
	h, err := NewHasher(make([]byte, 32))
	require.NoError(t, err)
	other, err = NewHasher(append(make([]byte, 31), 1))
	require.NoError(t, err)
	return h, other
}

func TestHashBindsKeyAndRegistration(t *testing.T) {
	t.Parallel()
	h, other := twoKeys(t)
	reg, reg2 := uuid.New(), uuid.New()
	stored := h.Hash(reg, "123456")
	require.Len(t, stored, 64)
	require.True(t, h.Match(reg, "123456", stored))
	require.False(t, h.Match(reg, "123457", stored))
	require.False(t, h.Match(reg2, "123456", stored), "another registration")
	require.False(t, other.Match(reg, "123456", stored), "another key")
	require.False(t, h.Match(reg, "123456", ""))
}

// A code is derived from its stored seed, its registration and the key:
// Recall gives the same code again (a resend mails it), Match takes it and
// nothing else, and neither another registration nor another key gets it.
// A Hash (an earlier release's, or of the empty string) matches as before
// and cannot be recalled.
func TestIssueAndRecall(t *testing.T) {
	t.Parallel()
	h, other := twoKeys(t)
	reg, reg2 := uuid.New(), uuid.New()

	c, stored := h.Issue(reg)
	require.True(t, WellFormed(c), c)
	require.NotContains(t, stored, c)
	again, ok := h.Recall(reg, stored)
	require.True(t, ok)
	require.Equal(t, c, again)
	require.True(t, h.Match(reg, c, stored))
	require.False(t, h.Match(reg, wrong(c), stored))
	require.False(t, h.Match(reg2, c, stored), "another registration")
	require.False(t, other.Match(reg, c, stored), "another key")

	seen := map[string]bool{}
	for range 1000 {
		c, _ := h.Issue(reg)
		seen[c] = true
	}
	require.Greater(t, len(seen), 990, "codes repeat far more than chance would")

	old := h.Hash(reg, "123456")
	require.True(t, h.Match(reg, "123456", old), "an earlier release's code")
	for _, s := range []string{old, h.Hash(reg, ""), "", "s", stored[:len(stored)-1], "s" + strings.Repeat("zz", 16)} {
		_, ok := h.Recall(reg, s)
		require.False(t, ok, "%q", s)
	}
	for _, c := range []string{"000000", "999999", "123456"} {
		require.False(t, h.Match(reg, c, h.Hash(reg, "")), "the code nobody can give")
	}
}

func wrong(c string) string {
	if c == "000000" {
		return "000001"
	}
	return "000000"
}
