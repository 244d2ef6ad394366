package hub

import (
	"context"

	"github.com/verifier/verifier/internal/startstop"
)

var _ startstop.Service = (*Hub)(nil)

// Start makes the hub a part of the process's lifecycle; it needs nothing
// to run, and subscriptions work before it. Stop ends every subscription
// (CloseAll), after the websockets were closed, so no client hears
// "complete" for a watch that is still open.
func (h *Hub) Start(ctx context.Context) error {
	ctx, run, err := h.StartInit(ctx)
	if run == nil {
		return err
	}
	go func() {
		defer run.Stopped(nil)
		run.Started()
		<-ctx.Done()
		h.CloseAll()
	}()
	return nil
}
