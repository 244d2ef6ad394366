package ratelimit

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucket(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(3, func() time.Time { return now })
	for i := range 3 {
		ok, _ := l.Allow("a")
		require.True(t, ok, "call %d within the burst", i)
	}
	ok, wait := l.Allow("a")
	require.False(t, ok)
	require.Equal(t, 20*time.Second, wait, "one token every 20 s at 3 a minute")

	ok, _ = l.Allow("b")
	require.True(t, ok, "another client has its own bucket")

	now = now.Add(20 * time.Second)
	ok, _ = l.Allow("a")
	require.True(t, ok)
	ok, _ = l.Allow("a")
	require.False(t, ok)

	now = now.Add(10 * time.Minute)
	l.Allow("c")
	l.mu.Lock()
	_, kept := l.buckets["a"]
	l.mu.Unlock()
	require.False(t, kept, "idle, refilled buckets are forgotten")
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	var l *Limiter = New(0, nil)
	for range 1000 {
		ok, _ := l.Allow("a")
		require.True(t, ok)
	}
}

func TestClientAddress(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/query", nil)
	r.RemoteAddr = "10.0.0.7:51234"
	r.Header.Add("X-Forwarded-For", "6.6.6.6, 203.0.113.9")
	require.Equal(t, "10.0.0.7", ClientAddress(r, 0), "headers are ignored unless a proxy is trusted")
	require.Equal(t, "203.0.113.9", ClientAddress(r, 1), "the address the proxy added, not the client's claim")
	require.Equal(t, "6.6.6.6", ClientAddress(r, 2), "two proxies: the one the outer proxy saw")
	require.Equal(t, "10.0.0.7", ClientAddress(r, 3), "fewer entries than proxies: the header is not trusted")
	r.Header.Del("X-Forwarded-For")
	require.Equal(t, "10.0.0.7", ClientAddress(r, 1))
}
