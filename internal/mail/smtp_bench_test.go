package mail

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verifier/verifier/internal/mail/mailtest"
	"github.com/verifier/verifier/internal/testkit/tcpproxy"
)

// BenchmarkSMTPSend sends one message after another on one session, to a
// server on this machine and to one a round trip of 10 ms away (a relay in
// a neighbouring region), with and without PIPELINING: what a message
// costs in time on an open session. make bench runs it.
func BenchmarkSMTPSend(b *testing.B) {
	for _, rtt := range []time.Duration{0, 10 * time.Millisecond} {
		for _, pipelining := range []bool{true, false} {
			b.Run(fmt.Sprintf("rtt=%v/pipelining=%v", rtt, pipelining), func(b *testing.B) {
				sink := mailtest.Start(b)
				if !pipelining {
					sink.NoPipelining()
				}
				proxy := tcpproxy.Start(b, sink.Addr())
				proxy.Delay(rtt / 2)
				s, err := NewSMTP("smtp://"+proxy.Addr(), "Verifier <no-reply@verifier.test>", 1, quiet())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				m := testMessage("a@example.com")
				// The session is open before the clock starts.
				if err := s.Send(context.Background(), m); err != nil {
					b.Fatal(err)
				}
				sink.Next(b, 10*time.Second)
				b.ResetTimer()
				// The sink holds what it received until taken: taken in
				// batches, off the clock.
				const batch = 1000
				for i := range b.N {
					if err := s.Send(context.Background(), m); err != nil {
						b.Fatal(err)
					}
					if n := i + 1; n%batch == 0 || n == b.N {
						b.StopTimer()
						sink.Collect(b, (n-1)%batch+1, 10*time.Second)
						b.StartTimer()
					}
				}
			})
		}
	}
}
