package mask

import (
	"testing"

	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

func TestEmail(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ada@example.com", "a…@example.com"},
		{"émile@example.fr", "é…@example.fr"},
		{"a@b", "a…@b"},
		{"a@b@example.com", "a…@example.com"},
		{"@example.com", "…"},
		{"no address", "…"},
		{"", "…"},
	} {
		if got := Email(c.in); got != c.want {
			t.Errorf("Email(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
