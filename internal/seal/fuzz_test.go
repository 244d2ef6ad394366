package seal

import (
	"bytes"
	"testing"
)

// FuzzOpen: a sealed token read back from the broker or the outbox may be
// anything (a tampered or foreign event); Open refuses it without
// panicking, and whatever opens must be exactly what was sealed.
func FuzzOpen(f *testing.F) {
	box, err := New(bytes.Repeat([]byte{3}, KeyLen))
	if err != nil {
		f.Fatal(err)
	}
	good := box.Seal("tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD", "a@example.com")
	for _, s := range []string{good, "", "AAAA", good[:10], good + "A"} {
		f.Add(s, "a@example.com")
	}
	f.Fuzz(func(t *testing.T, sealed, address string) {
		plain, err := box.Open(sealed, address)
		if err != nil {
			return
		}
		if address != "a@example.com" || plain != "tok_-0123456789abcdefghijklmnopqrstuvwxyzABCD" {
			t.Fatalf("opened something that was never sealed: %q for %q", plain, address)
		}
	})
}
