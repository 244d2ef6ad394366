package httpapi

import "sync"

// socketCount counts the open websockets of each client address.
type socketCount struct {
	mu   sync.Mutex
	open map[string]int
	max  int // 0 is no cap
}

func newSocketCount(max int) *socketCount {
	return &socketCount{open: map[string]int{}, max: max}
}

// acquire counts one more websocket for client, unless it holds max.
func (s *socketCount) acquire(client string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.open[client] >= s.max {
		return false
	}
	s.open[client]++
	return true
}

func (s *socketCount) release(client string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[client]--; s.open[client] <= 0 {
		delete(s.open, client)
	}
}
