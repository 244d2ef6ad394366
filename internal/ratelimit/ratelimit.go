// Package ratelimit limits how often one client may call the costly
// mutations (register hashes a password; register and resend send mail),
// with a token bucket per client address, kept in memory per replica.
package ratelimit

import (
	"context"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by client.
type Limiter struct {
	perMinute float64
	burst     float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New allows each client perMinute calls a minute, up to that many at once.
// perMinute <= 0 returns nil, which allows everything.
func New(perMinute int, now func() time.Time) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{perMinute: float64(perMinute), burst: float64(perMinute), now: now, buckets: map[string]*bucket{}}
}

// Allow takes a token for client. When none is left it reports how long
// until one is.
func (l *Limiter) Allow(client string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	rate := l.perMinute / 60 // tokens a second
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now, rate)
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// sweep forgets buckets that have refilled completely, so memory follows
// the number of recently active clients, not of all clients ever seen.
func (l *Limiter) sweep(now time.Time, rate float64) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := time.Duration(l.burst / rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
}

type clientKey struct{}

// WithClient returns ctx carrying the client's address.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// Client returns the client's address from ctx, "" if unknown.
func Client(ctx context.Context) string {
	c, _ := ctx.Value(clientKey{}).(string)
	return c
}

// ClientAddress is the address a request came from: the connection's
// peer, or, behind trustedProxies reverse proxies, the address the
// outermost of them saw (counted from the right of X-Forwarded-For;
// entries further left are the client's word).
func ClientAddress(r *http.Request, trustedProxies int) string {
	if trustedProxies > 0 {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, p := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(p))
			}
		}
		if i := len(hops) - trustedProxies; i >= 0 && i < len(hops) && hops[i] != "" {
			return hops[i]
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
