package janitor

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunsAtStartAndLogs(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	ran := make(chan string, 10)
	j := New(log, time.Hour,
		Task{Name: "works", Run: func(context.Context) (int, error) { ran <- "works"; return 3, nil }},
		Task{Name: "fails", Run: func(context.Context) (int, error) { ran <- "fails"; return 0, errors.New("db away") }},
	)
	require.NoError(t, j.Start(context.Background()))
	require.Equal(t, "works", <-ran)
	require.Equal(t, "fails", <-ran)
	j.Stop()
	j.Stop()
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, buf.String(), `task=works rows=3`)
	require.Contains(t, buf.String(), `task=fails err="db away"`)
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
