// Package ratelimit limits how often one client may call the mutations
// (register hashes a password; register and resend send mail; verifyEmail
// guesses would be tried through it), with a token bucket per client, kept
// in memory per replica. A client is an IPv4 address or an IPv6 /64: one
// subscriber is routinely given a whole /64, so keying on /128 would give
// one host billions of buckets.
package ratelimit

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/netip"
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

// IPv6PrefixBits is the IPv6 prefix that counts as one client: the /64
// that RFC 6177 and common practice assign to a single site or subscriber.
const IPv6PrefixBits = 64

// Key is the bucket of a client address: an IPv4 address as is (also when
// written IPv4-mapped), an IPv6 address's /64 prefix, anything that does
// not parse (no address known) as given.
func Key(client string) string {
	addr, err := netip.ParseAddr(client)
	if err != nil {
		return client
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	p, err := addr.WithZone("").Prefix(IPv6PrefixBits)
	if err != nil {
		return client
	}
	return p.String()
}

// Allow takes a token for client (an address; see Key). When none is left
// it reports how long until one is.
func (l *Limiter) Allow(client string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	client = Key(client)
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
//
// Each trusted proxy appends the address of whoever connected to it, so
// an entry that is not an IP address was not written by one (a proxy
// that passed the header on without appending, or fewer proxies than
// configured): it is the client's text, and trusting it would let a
// client name its own rate-limit bucket, one per request, and write what
// it likes into the log. It is skipped for the next entry to its right,
// the address the next proxy saw send it, and, if none is an address,
// the peer's. The address returned is in its canonical form, without a
// zone: an IPv6 zone is free text too.
func ClientAddress(r *http.Request, trustedProxies int) string {
	if trustedProxies > 0 {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, p := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(p))
			}
		}
		if i := len(hops) - trustedProxies; i >= 0 {
			for _, hop := range hops[i:] {
				if addr, ok := parseHop(hop); ok {
					return addr.String()
				}
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// parseHop reads an X-Forwarded-For entry as an IP address, with or
// without the port some proxies append ("203.0.113.9:4711",
// "[2001:db8::1]:4711"), so the entry keys like the bare address.
func parseHop(hop string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(hop)
	if err != nil {
		ap, err := netip.ParseAddrPort(hop)
		if err != nil {
			return netip.Addr{}, false
		}
		addr = ap.Addr()
	}
	return addr.WithZone("").Unmap(), true
}
