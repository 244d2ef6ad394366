// Package tcpproxy is a loopback TCP proxy for tests that can cut every
// connection and refuse new ones, then recover: a broker outage on demand,
// without stopping the broker other tests share. It can also stop passing
// on what clients send while what the target sends still arrives: a
// target that stops reading, as RabbitMQ does to a connection it blocks
// (a memory or disk alarm).
package tcpproxy

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards a loopback port to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	// unblocked is closed while what clients send passes; Block replaces
	// it with an open one.
	unblocked chan struct{}
	wg        sync.WaitGroup
}

// Start proxies to target until the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("tcpproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, unblocked: make(chan struct{})}
	close(p.unblocked)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.unblockLocked()
}

// Block stops passing on what clients send, on every connection, until
// Unblock: the target seems to stop reading, while what it sends (a
// heartbeat, say) still arrives, so the connection looks alive.
func (p *Proxy) Block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.unblocked:
		p.unblocked = make(chan struct{})
	default: // blocked already
	}
}

// Unblock passes on what clients send again, what waited first.
func (p *Proxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unblockLocked()
}

func (p *Proxy) unblockLocked() {
	select {
	case <-p.unblocked:
	default:
		close(p.unblocked)
	}
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, up, false) })
		p.wg.Go(func() { p.pipe(up, c, true) })
	}
}

// pipe copies src to dst; fromClient's copy holds what it read while the
// proxy is blocked, and reads nothing more.
func (p *Proxy) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient {
				p.mu.Lock()
				unblocked := p.unblocked
				p.mu.Unlock()
				<-unblocked
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
