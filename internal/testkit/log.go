package testkit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
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

// LogBuffer collects a log (of a service in-process or a child process) for
// a test to read or to show on failure; safe for concurrent use. The zero
// value is ready.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Take returns everything written so far and empties the buffer.
func (b *LogBuffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// Tail is the last n lines written.
func (b *LogBuffer) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Count reports how many times s was written (within one write).
func (b *LogBuffer) Count(s string) int { return strings.Count(b.String(), s) }
