package testkit

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { VerifyTestMain(m) }

func TestClock(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		run  func(c *Clock) time.Time
		want func(before time.Time, got time.Time) bool
	}{
		{"frozen stands still", func(c *Clock) time.Time { return c.Now() },
			func(_, got time.Time) bool { return got.Equal(t0) }},
		{"advance moves a frozen clock", func(c *Clock) time.Time { c.Advance(time.Hour); return c.Now() },
			func(_, got time.Time) bool { return got.Equal(t0.Add(time.Hour)) }},
		{"set replaces the time and the offset", func(c *Clock) time.Time {
			c.Advance(time.Hour)
			c.Set(t0.Add(time.Minute))
			return c.Now()
		}, func(_, got time.Time) bool { return got.Equal(t0.Add(time.Minute)) }},
		{"freeze keeps a frozen clock where it is", func(c *Clock) time.Time { c.Freeze(); return c.Now() },
			func(_, got time.Time) bool { return got.Equal(t0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.run(NewFrozenClock(t0))
			require.True(t, tt.want(t0, got), "got %v", got)
		})
	}

	t.Run("running clock plus an offset", func(t *testing.T) {
		t.Parallel()
		c := NewClock()
		c.Advance(time.Hour)
		require.False(t, c.Now().Before(time.Now().Add(time.Hour-time.Second)), "an hour ahead of real time")
		c.Freeze()
		a := c.Now()
		require.Equal(t, a, c.Now(), "frozen")
	})
}

func TestSignal(t *testing.T) {
	t.Parallel()
	s := NewSignal()
	select {
	case <-s.C():
		t.Fatal("a new signal has not fired")
	default:
	}
	s.Fire()
	s.Fire() // coalesces: never blocks the product side
	Receive(t, s.C(), "fire")
	select {
	case <-s.C():
		t.Fatal("two fires before a wait count as one")
	default:
	}
}

func TestWaitUntilWakesOnSignal(t *testing.T) {
	t.Parallel()
	s := NewSignal()
	done := make(chan int)
	step := make(chan struct{})
	go func() {
		n := 0
		for range step {
			n++
			s.Fire()
		}
		done <- n
	}()
	checks := 0
	WaitUntil(t, s, func() bool {
		checks++
		if checks < 3 {
			step <- struct{}{} // something happens, then the hook fires
			return false
		}
		return true
	}, "third check")
	close(step)
	require.Equal(t, 2, Receive(t, done, "producer end"))
	require.Equal(t, 3, checks, "checked once at the start and once per fire")
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	Eventually(t, func() bool { n++; return n == 3 }, "third check")
	require.Equal(t, 3, n)
}

func TestReceive(t *testing.T) {
	t.Parallel()
	ch := make(chan string, 1)
	ch <- "hello"
	require.Equal(t, "hello", Receive(t, ch, "greeting"))
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ch := make(chan int)
	close(ch)
	Closed(t, ch, "a closed channel")

	// A value before the close fails the test.
	ch = make(chan int, 1)
	ch <- 7
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Closed(ft, ch, "a channel with a value") }()
	Receive(t, done, "the end of the failing Closed")
	require.Equal(t, "testkit: 7 on a channel with a value, not its close", ft.msg)
}

// fatalTB records a Fatalf and ends its goroutine, as testing.T does, so a
// test can see a kit wait fail without failing itself.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWait(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	Wait(t, &wg, "nothing") // a zero count returns at once
	release := make(chan struct{})
	var n int
	wg.Go(func() {
		<-release
		n++
	})
	close(release)
	Wait(t, &wg, "the released goroutine")
	require.Equal(t, 1, n, "the goroutine's writes are seen after the wait")
}

func TestLogBuffer(t *testing.T) {
	t.Parallel()
	var b LogBuffer
	for _, line := range []string{"one\n", "two x\n", "three x\n"} {
		_, err := b.Write([]byte(line))
		require.NoError(t, err)
	}
	require.Equal(t, "two x\nthree x", b.Tail(2))
	require.Equal(t, "one\ntwo x\nthree x", b.Tail(5), "fewer lines than asked")
	require.Equal(t, 2, b.Count(" x"))
	require.Equal(t, "one\ntwo x\nthree x\n", b.Take())
	require.Empty(t, b.String(), "taken")
}

// parkedForLeakTest is a goroutine TestFindLeaks leaves running while it looks.
func parkedForLeakTest(stop <-chan struct{}) { <-stop }

// Not parallel: it looks at every goroutine of the process.
func TestFindLeaks(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { parkedForLeakTest(stop); close(done) }()
	err := FindLeaks()
	close(stop)
	Receive(t, done, "the parked goroutine's end")
	require.ErrorContains(t, err, "parkedForLeakTest")
}

func TestSilent(t *testing.T) {
	t.Parallel()
	addr, accepted := Silent(t)
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	Receive(t, accepted, "the connection")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	n, err := c.Read(make([]byte, 1))
	require.Zero(t, n, "says nothing")
	var timeout net.Error
	require.ErrorAs(t, err, &timeout)
	require.True(t, timeout.Timeout(), "still open: %v", err)
}

// Serve hands every connection to its function, one after another.
func TestServe(t *testing.T) {
	var served atomic.Int32
	addr := Serve(t, func(c net.Conn) {
		served.Add(1)
		_, _ = io.WriteString(c, "hello\n")
		_ = c.Close()
	})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		b, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, "hello\n", string(b))
		_ = c.Close()
	}
	require.Equal(t, int32(2), served.Load())
}
