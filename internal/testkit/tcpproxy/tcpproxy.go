// Package tcpproxy is a loopback TCP proxy for tests that can cut every
// connection and refuse new ones, then recover: a broker outage on demand,
// without stopping the broker other tests share. It can also stop passing
// on what clients send while what the target sends still arrives: a
// target that stops reading, as RabbitMQ does to a connection it blocks
// (a memory or disk alarm). And it can hold what it passes on for a while:
// a distant server on a loopback port.
package tcpproxy

import (
	"net"
	"sync"
	"testing"
	"time"
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
	// delay holds every read, each way, this long before it is written.
	delay time.Duration
	wg    sync.WaitGroup
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

// Delay makes connections opened from now on hold what they pass on, each
// way, for d: a link whose round trip is 2d. What was read meanwhile is in
// flight too, as on a real link, rather than queued behind the wait.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
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
		delay := p.delay
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(delayed(c, delay, &p.wg), up, false) })
		p.wg.Go(func() { p.pipe(delayed(up, delay, &p.wg), c, true) })
	}
}

// lateConn writes what it is given d after it was given, in order, from
// its own goroutine; Write waits only when 1024 writes are in flight. Only
// its pipe writes to it and closes it.
type lateConn struct {
	net.Conn
	d      time.Duration
	chunks chan lateChunk
	once   sync.Once
}

type lateChunk struct {
	b   []byte
	due time.Time
}

// delayed returns c itself when d is 0.
func delayed(c net.Conn, d time.Duration, wg *sync.WaitGroup) net.Conn {
	if d <= 0 {
		return c
	}
	l := &lateConn{Conn: c, d: d, chunks: make(chan lateChunk, 1024)}
	wg.Go(func() {
		for ch := range l.chunks {
			time.Sleep(time.Until(ch.due))
			_, _ = l.Conn.Write(ch.b) // a broken conn fails its reader too
		}
		_ = l.Conn.Close()
	})
	return l
}

func (l *lateConn) Write(b []byte) (int, error) {
	l.chunks <- lateChunk{append([]byte(nil), b...), time.Now().Add(l.d)}
	return len(b), nil
}

// Close closes the connection once what was written before has gone.
func (l *lateConn) Close() error {
	l.once.Do(func() { close(l.chunks) })
	return nil
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
