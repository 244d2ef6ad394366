package tcpproxy_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/testkit"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// echo serves one connection at a time, sending back what it reads.
func echo(t *testing.T) string {
	t.Helper()
	return testkit.Serve(t, func(c net.Conn) {
		_, _ = io.Copy(c, c)
		_ = c.Close()
	})
}

// A delayed link holds each way for its delay, and keeps what is written
// in order: two writes come back as they went, a round trip later.
func TestDelay(t *testing.T) {
	const d = 50 * time.Millisecond
	p := tcpproxy.Start(t, echo(t))
	p.Delay(d)
	c, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	defer c.Close()
	start := time.Now()
	_, err = c.Write([]byte("first\n"))
	require.NoError(t, err)
	_, err = c.Write([]byte("second\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	for _, want := range []string{"first\n", "second\n"} {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, want, line)
	}
	require.GreaterOrEqual(t, time.Since(start), 2*d, "not before a round trip")
}
