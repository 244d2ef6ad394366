package testkit

import (
	"net"
	"sync"
	"testing"
)

// Silent listens on a loopback port, accepts every connection and never
// writes to one: a server that took the TCP connection and hangs (a mail
// server that never greets, a broker that never answers its handshake).
// It returns the address and the connections as they are accepted; they
// and the listener are closed when the test ends.
func Silent(t testing.TB) (string, <-chan net.Conn) {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	// Registered before Serve's, so it runs after: once the listener is
	// closed and its loop done, no connection comes after these.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	// Buffered, and never blocking the loop: a connection nobody takes
	// is still held open, and closed at the end.
	accepted := make(chan net.Conn, 64)
	addr := Serve(t, func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		select {
		case accepted <- c:
		default:
		}
	})
	return addr, accepted
}
