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
//
// "watched" events name their registration, so each delivery change also
// writes a DeliveryChanged outbox row in the record's transaction and the
// relay publishes it; "unwatched" ones do not, which is the cost of the
// path before delivery changes were announced. Compare the two within one
// run: the machine's load moves both alike.
func BenchmarkMailThroughput(b *testing.B) {
	const n = 2000
	for _, watched := range []bool{false, true} {
		name := map[bool]string{false: "unwatched", true: "watched"}[watched]
		b.Run(name, func(b *testing.B) {
			bb := setup(b)
			bb.unwatched = !watched
			// As the service runs it (mailInFlight): more emails in flight
			// than SMTP connections, so their records share commits.
			bb.mailer.Concurrency = 256
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
		})
	}
}
