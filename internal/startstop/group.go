package startstop

import (
	"context"
	"fmt"
	"reflect"
	"slices"
)

// Group is the parts of a process: started in the order they were added,
// stopped in reverse, so a part only ever runs while what it uses runs.
type Group struct {
	parts   []part
	started int
}

type part struct {
	name string
	svc  Service
}

// Add appends s, named for errors, to the parts to start.
func (g *Group) Add(name string, s Service) { g.parts = append(g.parts, part{name, s}) }

// Start starts the parts in order. If one fails, those already started
// are stopped again, in reverse, and its error is returned.
func (g *Group) Start(ctx context.Context) error {
	for _, p := range g.parts[g.started:] {
		if err := p.svc.Start(ctx); err != nil {
			g.Stop()
			return fmt.Errorf("start %s: %w", p.name, err)
		}
		g.started++
	}
	return nil
}

// Wait returns nil once ctx ends, or an error naming the first part that
// ended by itself: a process missing a part is not the one that was
// started, so it should stop.
func (g *Group) Wait(ctx context.Context) error {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	for _, p := range g.parts[:g.started] {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.svc.Stopped())})
	}
	i, _, _ := reflect.Select(cases)
	if i == 0 {
		return nil
	}
	p := g.parts[i-1]
	if err := p.svc.Err(); err != nil {
		return fmt.Errorf("%s stopped: %w", p.name, err)
	}
	return fmt.Errorf("%s stopped", p.name)
}

// Stop stops the started parts in reverse order, each fully before the
// next. It is idempotent.
func (g *Group) Stop() {
	for _, p := range slices.Backward(g.parts[:g.started]) {
		p.svc.Stop()
	}
	g.started = 0
}
