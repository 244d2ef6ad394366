package token

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		tok, hash := New()
		require.Len(t, tok, Len)
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		require.NoError(t, err)
		require.Len(t, raw, 32, "256 bits of randomness")
		require.True(t, WellFormed(tok))
		require.Equal(t, Hash(tok), hash)
		require.NotContains(t, hash, tok)
		require.False(t, seen[tok])
		seen[tok] = true
	}
}

func TestWellFormed(t *testing.T) {
	t.Parallel()
	tok, _ := New()
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"fresh", tok, true},
		{"empty", "", false},
		{"short", tok[:Len-1], false},
		{"long", tok + "A", false},
		{"padding", tok[:Len-1] + "=", false},
		{"standard alphabet", "+" + tok[1:], false},
		{"space", " " + tok[1:], false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, WellFormed(tt.in), tt.name)
	}
}
