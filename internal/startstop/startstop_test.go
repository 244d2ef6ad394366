package startstop

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// worker is the smallest part: it runs until Stop, or until fail is
// closed, and records what happened in log.
type worker struct {
	Base
	name     string
	startErr error
	fail     chan error
	log      *record
}

type record struct {
	mu  sync.Mutex
	got []string
}

func (r *record) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *record) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func newWorker(name string, log *record) *worker {
	return &worker{name: name, fail: make(chan error, 1), log: log}
}

func (w *worker) Start(ctx context.Context) error {
	ctx, run, err := w.StartInit(ctx)
	if run == nil {
		return err
	}
	if w.startErr != nil {
		return run.Fail(w.startErr)
	}
	w.log.add("start " + w.name)
	go func() {
		var err error
		defer func() { run.Stopped(err) }()
		run.Started()
		select {
		case <-ctx.Done():
			w.log.add("stop " + w.name)
		case err = <-w.fail:
		}
	}()
	return nil
}

func closed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	testkit.Receive(t, ch, "%s", what)
}

func open(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: signalled too early", what)
	default:
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		do   func(t *testing.T, w *worker)
	}{
		{"start then stop", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			closed(t, w.Started(), "started")
			require.True(t, w.Running())
			open(t, w.Stopped(), "stopped")
			w.Stop()
			closed(t, w.Stopped(), "stopped")
			require.False(t, w.Running())
			require.NoError(t, w.Err())
			require.Equal(t, []string{"start w", "stop w"}, w.log.list())
		}},
		{"stop before start does nothing", func(t *testing.T, w *worker) {
			w.Stop()
			open(t, w.Started(), "started")
			require.NoError(t, w.Start(context.Background()), "the part may still start")
			closed(t, w.Started(), "started")
			w.Stop()
		}},
		{"double stop", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			w.Stop()
			w.Stop()
			require.Equal(t, []string{"start w", "stop w"}, w.log.list(), "wound down once")
		}},
		{"concurrent stops all wait for the end", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					w.Stop()
					// assert, not require: this is not the test's goroutine.
					assert.Equal(t, []string{"start w", "stop w"}, w.log.list(), "Stop returned before the end")
				})
			}
			testkit.Wait(t, &wg, "return of 8 concurrent Stops")
		}},
		{"double start runs once", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			require.NoError(t, w.Start(context.Background()))
			w.Stop()
			require.Equal(t, []string{"start w", "stop w"}, w.log.list())
		}},
		{"start after stop is refused", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			w.Stop()
			require.ErrorIs(t, w.Start(context.Background()), ErrStopped)
		}},
		{"failed start signals and ends", func(t *testing.T, w *worker) {
			w.startErr = errors.New("port taken")
			require.ErrorIs(t, w.Start(context.Background()), w.startErr)
			closed(t, w.Started(), "started")
			closed(t, w.Stopped(), "stopped")
			require.ErrorIs(t, w.Err(), w.startErr)
			require.ErrorIs(t, w.Start(context.Background()), ErrStopped)
			w.Stop()
		}},
		{"a part may end by itself", func(t *testing.T, w *worker) {
			require.NoError(t, w.Start(context.Background()))
			boom := errors.New("listener closed")
			w.fail <- boom
			closed(t, w.Stopped(), "stopped")
			require.ErrorIs(t, w.Err(), boom)
			require.False(t, w.Running())
			w.Stop()
		}},
		{"the start context's end does not stop the part", func(t *testing.T, w *worker) {
			ctx, cancel := context.WithCancel(context.Background())
			require.NoError(t, w.Start(ctx))
			cancel()
			open(t, w.Stopped(), "stopped")
			w.Stop()
			closed(t, w.Stopped(), "stopped")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.do(t, newWorker("w", &record{}))
		})
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()

	t.Run("starts in order and stops in reverse", func(t *testing.T) {
		t.Parallel()
		log := &record{}
		var g Group
		for _, n := range []string{"db", "broker", "http"} {
			g.Add(n, newWorker(n, log))
		}
		require.NoError(t, g.Start(context.Background()))
		g.Stop()
		g.Stop()
		require.Equal(t, []string{"start db", "start broker", "start http", "stop http", "stop broker", "stop db"}, log.list())
	})

	t.Run("a failed start stops what started", func(t *testing.T) {
		t.Parallel()
		log := &record{}
		var g Group
		bad := newWorker("http", log)
		bad.startErr = errors.New("port taken")
		late := newWorker("late", log)
		g.Add("db", newWorker("db", log))
		g.Add("broker", newWorker("broker", log))
		g.Add("http", bad)
		g.Add("late", late)
		err := g.Start(context.Background())
		require.ErrorIs(t, err, bad.startErr)
		require.ErrorContains(t, err, "start http")
		require.Equal(t, []string{"start db", "start broker", "stop broker", "stop db"}, log.list())
		open(t, late.Started(), "never started")
	})

	t.Run("wait ends with the context", func(t *testing.T) {
		t.Parallel()
		var g Group
		g.Add("a", newWorker("a", &record{}))
		require.NoError(t, g.Start(context.Background()))
		defer g.Stop()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.NoError(t, g.Wait(ctx))
	})

	t.Run("wait ends when a part ends by itself", func(t *testing.T) {
		t.Parallel()
		var g Group
		a, b := newWorker("a", &record{}), newWorker("b", &record{})
		g.Add("a", a)
		g.Add("b", b)
		require.NoError(t, g.Start(context.Background()))
		defer g.Stop()
		boom := errors.New("serve: accept failed")
		b.fail <- boom
		err := g.Wait(context.Background())
		require.ErrorIs(t, err, boom)
		require.ErrorContains(t, err, "b stopped")
	})
}
