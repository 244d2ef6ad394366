package ratelimit

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/verifier/verifier/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

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

func TestKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:DB8:1:2::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
		{"", ""},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, Key(tt.in), "%q", tt.in)
	}
}

// IPv6 clients share a bucket per /64: rotating the interface identifier
// gains nothing; another /64 has its own bucket.
func TestIPv6Per64(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(2, func() time.Time { return now })
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2"} {
		ok, _ := l.Allow(a)
		require.True(t, ok, a)
	}
	ok, wait := l.Allow("2001:db8:1:2:ffff::3")
	require.False(t, ok, "third address in the same /64")
	require.Equal(t, 30*time.Second, wait)
	ok, _ = l.Allow("2001:db8:1:3::1")
	require.True(t, ok, "the next /64 is another client")
	ok, _ = l.Allow("198.51.100.1")
	require.True(t, ok)
	ok, _ = l.Allow("198.51.100.2")
	require.True(t, ok, "IPv4 clients count per address")
}

func TestClientAddressStripsPort(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/query", nil)
	r.RemoteAddr = "[2001:db8::7]:51234"
	require.Equal(t, "2001:db8::7", ClientAddress(r, 0))
	r.Header.Set("X-Forwarded-For", "203.0.113.9:4711")
	require.Equal(t, "203.0.113.9", ClientAddress(r, 1))
	r.Header.Set("X-Forwarded-For", "[2001:db8::9]:4711")
	require.Equal(t, "2001:db8::9", ClientAddress(r, 1))
}

// An X-Forwarded-For entry that is not an IP address was not written by a
// trusted proxy: the address the next proxy saw (or the peer) stands in.
func TestClientAddressDistrustsWhatIsNoAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		trust     int
		forwarded string
		want      string
	}{
		{"garbage", 1, "SECRET-not-an-ip", "10.0.0.7"},
		{"garbage behind a claim", 1, "6.6.6.6, SECRET-not-an-ip", "10.0.0.7"},
		{"garbage where the outer proxy's entry goes", 2, "SECRET-not-an-ip, 203.0.113.9", "203.0.113.9"},
		{"garbage between", 2, "6.6.6.6, SECRET-not-an-ip, 203.0.113.9", "203.0.113.9"},
		{"an empty entry", 1, "203.0.113.9, ", "10.0.0.7"},
		{"a bad port", 1, "203.0.113.9:99999", "10.0.0.7"},
		{"a zone is free text", 1, "fe80::1%SECRET", "fe80::1"},
		{"canonical IPv6", 1, "2001:DB8:0::1", "2001:db8::1"},
		{"IPv4-mapped", 1, "::ffff:203.0.113.9", "203.0.113.9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/query", nil)
			r.RemoteAddr = "10.0.0.7:51234"
			r.Header.Set("X-Forwarded-For", tt.forwarded)
			got := ClientAddress(r, tt.trust)
			require.Equal(t, tt.want, got)
			require.NotContains(t, Key(got), "SECRET")
		})
	}
}

// A client that sends a new made-up X-Forwarded-For with each request is
// still one client.
func TestGarbageForwardedForIsNoNewBucket(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(2, func() time.Time { return now })
	for i := range 5 {
		r := httptest.NewRequest("POST", "/query", nil)
		r.RemoteAddr = "10.0.0.7:51234"
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("garbage-%d", i))
		ok, _ := l.Allow(ClientAddress(r, 1))
		require.Equal(t, i < 2, ok, "request %d", i)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Len(t, l.buckets, 1)
}
