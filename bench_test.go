package main

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Run with: go test -run '^$' -bench . -benchtime 200x .
// (make bench). RabbitMQ sub-benchmarks need AMQP_URL or a local broker.

// BenchmarkSignupToInbox measures, one registration at a time, the time
// from sending the register mutation to the email arriving at a real SMTP
// server, and the part of it after the mutation answered (outbox, relay,
// broker, mailer, SMTP). The password hash (argon2id, m=19 MiB, t=2) is in
// the first figure only.
func BenchmarkSignupToInbox(b *testing.B) {
	for _, br := range brokers {
		b.Run(br.name, func(b *testing.B) {
			s := startService(b, br.opts(b))
			s.waitReady(b, 200)
			var total, afterAnswer []time.Duration
			i := 0
			for b.Loop() {
				start := time.Now()
				s.register(b, fmt.Sprintf("bench-%d@example.com", i))
				answered := time.Now()
				s.sink.Next(b, 30*time.Second)
				end := time.Now()
				total = append(total, end.Sub(start))
				afterAnswer = append(afterAnswer, end.Sub(answered))
				i++
			}
			report(b, "signup-to-inbox", total)
			report(b, "answer-to-inbox", afterAnswer)
		})
	}
}

// BenchmarkConfirmToLiveUpdate measures the time from sending verifyEmail
// to the VERIFIED event arriving on the websocket subscription of the
// "check your inbox" screen.
func BenchmarkConfirmToLiveUpdate(b *testing.B) {
	for _, br := range brokers {
		b.Run(br.name, func(b *testing.B) {
			s := startService(b, br.opts(b))
			s.waitReady(b, 200)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				watch := s.register(b, fmt.Sprintf("live-%d@example.com", i))
				tok := tokenFrom(b, s.sink.Next(b, 30*time.Second))
				w := s.subscribe(b, transportWS, watch)
				w.expect("UNVERIFIED")
				b.StartTimer()
				start := time.Now()
				r := s.gql(b, verifyQ, map[string]any{"t": tok})
				require.Empty(b, r.Errors)
				w.expect("VERIFIED")
				lat = append(lat, time.Since(start))
				b.StopTimer()
				w.WS.Close()
				b.StartTimer()
				i++
			}
			report(b, "confirm-to-live", lat)
		})
	}
}

// BenchmarkBurst registers 200 addresses at once (64 clients) and waits
// for all 200 emails: throughput, and the process's peak memory, which the
// bounded hashing pool keeps flat however large the burst.
func BenchmarkBurst(b *testing.B) {
	const n, clients = 200, 64
	for _, br := range brokers {
		b.Run(br.name, func(b *testing.B) {
			s := startService(b, br.opts(b))
			s.waitReady(b, 200)
			round := 0
			var elapsed time.Duration
			for b.Loop() {
				start := time.Now()
				var wg sync.WaitGroup
				next := make(chan int, n)
				for i := range n {
					next <- i
				}
				close(next)
				for range clients {
					wg.Go(func() {
						for i := range next {
							s.register(b, fmt.Sprintf("burst-%d-%d@example.com", round, i))
						}
					})
				}
				wg.Wait()
				s.sink.Collect(b, n, 2*time.Minute)
				elapsed += time.Since(start)
				round++
			}
			b.ReportMetric(float64(n*round)/elapsed.Seconds(), "signups/s")
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
			}
		})
	}
}

func report(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), name+"-p50-ms")
	b.ReportMetric(q(0.95), name+"-p95-ms")
	b.ReportMetric(q(0.99), name+"-p99-ms")
}
