package code

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestNewIsSixDigits(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		c := New()
		require.True(t, WellFormed(c), c)
		seen[c] = true
	}
	require.Greater(t, len(seen), 990, "codes repeat far more than chance would")
}

func TestWellFormed(t *testing.T) {
	t.Parallel()
	for s, ok := range map[string]bool{"000000": true, "123456": true, "12345": false, "1234567": false, "12345a": false, "１２３４５６": false, "": false} {
		require.Equal(t, ok, WellFormed(s), "%q", s)
	}
}

func TestHashBindsKeyAndRegistration(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(make([]byte, 32))
	require.NoError(t, err)
	other, err := NewHasher(append(make([]byte, 31), 1))
	require.NoError(t, err)
	reg, reg2 := uuid.New(), uuid.New()
	stored := h.Hash(reg, "123456")
	require.Len(t, stored, 64)
	require.True(t, h.Match(reg, "123456", stored))
	require.False(t, h.Match(reg, "123457", stored))
	require.False(t, h.Match(reg2, "123456", stored), "another registration")
	require.False(t, other.Match(reg, "123456", stored), "another key")
	require.False(t, h.Match(reg, "123456", ""))
}
