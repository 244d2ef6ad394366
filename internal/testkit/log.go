package testkit

import (
	"log/slog"
	"testing"
)

// Logger returns a logger that writes records at level and above to t's
// output, shown with the test that wrote them (and only on failure unless
// -v). Use it for the parts under test; Discard for the rest.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// Discard returns a logger that drops everything, for parts whose log the
// test neither reads nor wants in its output.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
