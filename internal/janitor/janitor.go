// Package janitor runs clean-up tasks periodically, so tables that grow with
// every sign-up (tokens, cooldown records, kept dev mail) stay bounded.
package janitor

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Task deletes what has outlived its use and reports how many rows went.
type Task struct {
	Name string
	Run  func(ctx context.Context) (int, error)
}

// Janitor runs its tasks at start and then every interval, until Stop.
type Janitor struct {
	every time.Duration
	tasks []Task
	log   *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a janitor that runs tasks every interval.
func New(log *slog.Logger, every time.Duration, tasks ...Task) *Janitor {
	return &Janitor{every: every, tasks: tasks, log: log}
}

// Start runs the janitor in the background.
func (j *Janitor) Start(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancel != nil {
		return nil
	}
	ctx, j.cancel = context.WithCancel(context.WithoutCancel(ctx))
	j.done = make(chan struct{})
	go j.run(ctx)
	return nil
}

// Stop ends the janitor and waits for a run in progress. Safe to call twice
// or before Start.
func (j *Janitor) Stop() {
	j.mu.Lock()
	cancel, done := j.cancel, j.done
	j.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (j *Janitor) run(ctx context.Context) {
	defer close(j.done)
	t := time.NewTicker(j.every)
	defer t.Stop()
	for {
		j.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce runs every task once.
func (j *Janitor) RunOnce(ctx context.Context) {
	for _, task := range j.tasks {
		n, err := task.Run(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			j.log.Warn("clean-up failed; will try again", "task", task.Name, "err", err)
		case n > 0:
			j.log.Info("cleaned up", "task", task.Name, "rows", n)
		}
	}
}
