package token

import (
	"encoding/base64"
	"testing"
)

// FuzzWellFormed: the screen in front of every token lookup accepts
// exactly the 43-character base64url strings that decode to 32 bytes, and
// never panics on anything a client sends.
func FuzzWellFormed(f *testing.F) {
	tok, _ := New()
	for _, s := range []string{tok, "", "x", tok + "=", tok[:42] + "/", tok[:42] + "+", "\x00", string(make([]byte, 600))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := WellFormed(s)
		b, err := base64.RawURLEncoding.DecodeString(s)
		want := err == nil && len(b) == 32 && len(s) == Len
		if ok != want {
			t.Fatalf("WellFormed(%q) = %v, want %v", s, ok, want)
		}
		if ok && len(Hash(s)) != 64 {
			t.Fatalf("hash of %q has the wrong length", s)
		}
	})
}
