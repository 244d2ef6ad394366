package gqlws

import (
	"context"
	"sync"
	"time"
)

// closeHandshakeTimeout bounds how long CloseAll waits for clients to
// answer the close frame before it drops their connections: a client that
// never answers must not hold up a restart.
const closeHandshakeTimeout = 2 * time.Second

// Conns is the set of open connections. http.Server.Shutdown does not see
// hijacked connections, so shutdown closes them here, all with one close
// code, before anything else ends their subscriptions.
type Conns struct {
	mu   sync.Mutex
	open map[*Conn]struct{}
	// Once CloseAll ran, code and reason close late arrivals at once.
	shut   bool
	code   int
	reason string
	// drained is closed once shut and no connection is left.
	drained chan struct{}
}

// NewConns returns an empty set.
func NewConns() *Conns {
	return &Conns{open: map[*Conn]struct{}{}, drained: make(chan struct{})}
}

func (s *Conns) add(c *Conn) {
	s.mu.Lock()
	if s.shut {
		code, reason := s.code, s.reason
		s.mu.Unlock()
		// Upgraded while shutting down: told to come back, like the rest.
		_ = c.writeClose(code, reason, closeHandshakeTimeout)
		_ = c.Close()
		return
	}
	s.open[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Conns) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[c]; !ok {
		return
	}
	delete(s.open, c)
	if s.shut && len(s.open) == 0 {
		close(s.drained)
	}
}

// Len reports the open connections.
func (s *Conns) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// CloseAll sends every open connection a close frame with code and reason
// (after which nothing else is written to it), waits a moment for the
// clients to answer, then drops whatever is left. Connections accepted
// afterwards are closed the same way at once. It returns when every
// connection is closed; a second call only waits for that.
func (s *Conns) CloseAll(ctx context.Context, code int, reason string) {
	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		s.wait(ctx)
		return
	}
	s.shut, s.code, s.reason = true, code, reason
	conns := make([]*Conn, 0, len(s.open))
	for c := range s.open {
		conns = append(conns, c)
	}
	if len(conns) == 0 {
		close(s.drained)
	}
	s.mu.Unlock()

	// In parallel: a client that stopped reading holds its writer until
	// the deadline, and must not delay the frames of the others.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.writeClose(code, reason, closeHandshakeTimeout) })
	}
	wg.Wait()
	s.wait(ctx)
}

// wait gives the clients closeHandshakeTimeout to answer the close frame
// (closing the TCP connection before then could reset it and lose the
// frame), then closes what is left.
func (s *Conns) wait(ctx context.Context) {
	timer := time.NewTimer(closeHandshakeTimeout)
	defer timer.Stop()
	select {
	case <-s.drained:
		return
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	left := make([]*Conn, 0, len(s.open))
	for c := range s.open {
		left = append(left, c)
	}
	s.mu.Unlock()
	for _, c := range left {
		_ = c.Close()
	}
}
