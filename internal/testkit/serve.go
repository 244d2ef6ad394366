package testkit

import (
	"net"
	"testing"
)

// Serve runs a loopback TCP server until the test ends, handing each
// connection in turn to serve (one at a time, on the server's goroutine),
// and returns its host:port: a scripted peer for a client under test.
// serve owns the connection; the server waits for it before the test
// ends.
func Serve(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}
