// Package janitor runs clean-up tasks periodically, so tables that grow with
// every sign-up (tokens, cooldown records, kept dev mail) stay bounded.
package janitor

import (
	"context"
	"log/slog"
	"time"

	"github.com/verifier/verifier/internal/startstop"
)

// Task deletes what has outlived its use and reports how many rows went.
type Task struct {
	Name string
	Run  func(ctx context.Context) (int, error)
}

// Janitor runs its tasks at start and then every interval, until Stop.
type Janitor struct {
	startstop.Base

	every time.Duration
	tasks []Task
	log   *slog.Logger
}

var _ startstop.Service = (*Janitor)(nil)

// New returns a janitor that runs tasks every interval.
func New(log *slog.Logger, every time.Duration, tasks ...Task) *Janitor {
	return &Janitor{every: every, tasks: tasks, log: log}
}

// Start runs the janitor in the background until Stop, which waits for a
// run in progress.
func (j *Janitor) Start(ctx context.Context) error {
	ctx, run, err := j.StartInit(ctx)
	if run == nil {
		return err
	}
	go func() {
		defer run.Stopped(nil)
		run.Started()
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
	}()
	return nil
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
