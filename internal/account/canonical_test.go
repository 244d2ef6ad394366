package account

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestCanonicalEmail(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"a@example.com", "a@example.com"},
		{"A.B@Example.COM", "a.b@example.com"},
		{"a+1@example.com", "a@example.com"},
		{"a+1+2@example.com", "a@example.com"},
		{"a.b+news@example.com", "a.b@example.com"},
		{"a.b@gmail.com", "ab@gmail.com"},
		{"A.B+x@GoogleMail.com", "ab@gmail.com"},
		{"a.b@sub.gmail.com", "a.b@sub.gmail.com"},
		{"a.+x@example.com", "a@example.com"},
		{"+tag@example.com", "+tag@example.com"},
		{".+x@gmail.com", ".+x@gmail.com"},
		{"plain", "plain"},
		{"@example.com", "@example.com"},
		{"", ""},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, CanonicalEmail(tt.in), "%q", tt.in)
	}
}

// FuzzCanonicalEmail: never panics, idempotent, and a valid address maps to
// a valid address.
func FuzzCanonicalEmail(f *testing.F) {
	for _, s := range []string{"a+b@example.com", "A.B@gmail.com", "x.+y@googlemail.com", "+@x.y", "ü+ß@bücher.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c := CanonicalEmail(in)
		require.Equal(t, c, CanonicalEmail(c), "idempotent")
		norm, err := NormalizeEmail(in)
		if err != nil {
			return
		}
		c = CanonicalEmail(norm)
		again, err := NormalizeEmail(c)
		require.NoError(t, err, "canonical form of %q is %q", norm, c)
		require.Equal(t, c, again)
		require.Equal(t, emailDomain(c), emailDomain(CanonicalEmail(c)))
	})
}

// FuzzNormalizeEmail: never panics; what it accepts is within the length
// limits, valid UTF-8, and a fixed point.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{" Mixed.Case@Example.COM ", "a@b", "Name <a@example.com>", "a@[127.0.0.1]", "\"q\"@example.com", "\u212a@example.com", strings.Repeat("\u023a", 32) + "@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		norm, err := NormalizeEmail(in)
		if err != nil {
			return
		}
		require.LessOrEqual(t, len(norm), MaxEmailLen)
		require.True(t, utf8.ValidString(norm))
		again, err := NormalizeEmail(norm)
		require.NoError(t, err, "%q normalized to %q", in, norm)
		require.Equal(t, norm, again)
	})
}
