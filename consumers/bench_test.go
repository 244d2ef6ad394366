package consumers

import (
	"fmt"
	"testing"
	"time"

	"github.com/verifier/verifier/internal/broker/inproc"
)

// BenchmarkMailThroughput measures the mail path alone, queue to SMTP:
// verification events already in the outbox, through the relay, the
// in-process broker and the mailer (delivery records included) to a local
// SMTP sink, on SQLite. The figure is emails per second.
func BenchmarkMailThroughput(b *testing.B) {
	const n = 2000
	bb := setup(b)
	relay := bb.pipeline(b, inproc.New(quiet(), inproc.Options{}))
	round := 0
	var elapsed time.Duration
	for b.Loop() {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("bench-%d-%d@example.com", round, i)
		}
		bb.register(b, addrs...)
		start := time.Now()
		relay.Wake()
		bb.sink.Collect(b, n, 2*time.Minute)
		elapsed += time.Since(start)
		round++
	}
	b.ReportMetric(float64(n*round)/elapsed.Seconds(), "emails/s")
}
