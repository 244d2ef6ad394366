package signer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/testkit"
)

// FuzzVerifySession: a bearer token is whatever a client sends. Anything
// VerifySession accepts must be a session token we signed for ada, and
// everything else is refused with ErrInvalid, never a panic or another
// error (the database is up).
func FuzzVerifySession(f *testing.F) {
	ctx := context.Background()
	db, err := database.Open(ctx, databasetest.SQLite(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	clock := testkit.NewFrozenClock(time.Now())
	s, err := New(ctx, Options{
		DB: db.Ent, Issuer: issuer, ReceiptTTL: receiptTTL, SessionTTL: sessionTTL,
		Now: clock.Now, Log: testkit.Discard(),
	})
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := s.Session(ctx, ada)
	if err != nil {
		f.Fatal(err)
	}
	receipt, err := s.Receipt(ctx, ada)
	if err != nil {
		f.Fatal(err)
	}
	p := strings.Split(good, ".")
	for _, seed := range []string{good, receipt, "", "..", p[0] + "." + p[1] + ".", p[0] + ".." + p[2], good + "A", good[:len(good)-3]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.VerifySession(ctx, token)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("not ErrInvalid: %v", err)
			}
			return
		}
		if c != ada {
			t.Fatalf("accepted claims never signed: %+v", c)
		}
	})
}
