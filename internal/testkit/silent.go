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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	// Buffered, and never blocking the loop: a connection nobody takes
	// is still held open, and closed at the end.
	accepted := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- c:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), accepted
}
