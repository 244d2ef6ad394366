package seal

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestSealOpen(t *testing.T) {
	t.Parallel()
	box, err := New(bytes.Repeat([]byte{7}, KeyLen))
	require.NoError(t, err)
	other, err := New(bytes.Repeat([]byte{8}, KeyLen))
	require.NoError(t, err)

	const tok = "tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD"
	s := box.Seal(tok, "a@example.com")
	require.NotContains(t, s, tok)
	require.NotEqual(t, s, box.Seal(tok, "a@example.com"), "a fresh nonce each time")

	got, err := box.Open(s, "a@example.com")
	require.NoError(t, err)
	require.Equal(t, tok, got)

	// One character in the middle changed: the last two may already be
	// what a change would write, or carry only bits the decoding drops.
	tampered := []byte(s)
	if i := len(s) / 2; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	tests := []struct {
		name, sealed, context string
		box                   *Box
	}{
		{"other address", s, "b@example.com", box},
		{"other key", s, "a@example.com", other},
		{"truncated", s[:20], "a@example.com", box},
		{"tampered", string(tampered), "a@example.com", box},
		{"not base64", "!!!", "a@example.com", box},
		{"empty", "", "a@example.com", box},
	}
	for _, tt := range tests {
		_, err := tt.box.Open(tt.sealed, tt.context)
		require.ErrorIs(t, err, ErrOpen, tt.name)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	k, err := ParseKey(strings.Repeat("A", 43) + "=")
	require.NoError(t, err)
	require.Len(t, k, KeyLen)
	_, err = ParseKey("c2hvcnQ=")
	require.Error(t, err)
	_, err = ParseKey("not base64 at all!")
	require.Error(t, err)
	_, err = New([]byte("short"))
	require.Error(t, err)
}

// The generated key is stored once and the same key comes back.
func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	db, err := database.Open(context.Background(), databasetest.SQLite(t))
	require.NoError(t, err)
	defer db.Close()
	k1, err := LoadOrCreate(context.Background(), db.Ent)
	require.NoError(t, err)
	require.Len(t, k1, KeyLen)
	k2, err := LoadOrCreate(context.Background(), db.Ent)
	require.NoError(t, err)
	require.Equal(t, k1, k2)
}

// KeyFor gives TOKEN_SEAL_KEY when set, and then generates nothing; else
// the key kept in the database.
func TestKeyFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.SQLite(t))
	require.NoError(t, err)
	defer db.Close()
	configured := bytes.Repeat([]byte{4}, KeyLen)
	k, err := KeyFor(ctx, db.Ent, configured)
	require.NoError(t, err)
	require.Equal(t, configured, k)
	require.Zero(t, db.Ent.Secret.Query().CountX(ctx), "nothing generated")

	k, err = KeyFor(ctx, db.Ent, nil)
	require.NoError(t, err)
	kept, err := LoadOrCreate(ctx, db.Ent)
	require.NoError(t, err)
	require.Equal(t, kept, k)
	require.NotEqual(t, configured, k)
}
