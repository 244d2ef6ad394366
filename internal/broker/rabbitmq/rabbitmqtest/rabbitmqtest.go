// Package rabbitmqtest finds the RabbitMQ that tests run against.
package rabbitmqtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is where .ci/run starts RabbitMQ.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns AMQP_URL (or DefaultURL) once a TCP connection to it
// succeeds. When no broker answers, the test fails under CI (CI set) and
// is skipped elsewhere, saying why: a RabbitMQ test never passes without
// RabbitMQ.
func URL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("AMQP_URL")
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("rabbitmqtest: AMQP_URL does not parse: %v", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("RabbitMQ required under CI but %s does not answer: %v", host, err)
		}
		t.Skipf("RabbitMQ at %s does not answer (%v); run 'make test' to start one", host, err)
	}
	_ = c.Close()
	return raw
}

// Host returns the host:port of an AMQP URL.
func Host(raw string) string {
	u, _ := url.Parse(raw)
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5672")
	}
	return u.Host
}

// Via returns raw with its host replaced by addr (a proxy in front of it).
func Via(raw, addr string) string {
	u, _ := url.Parse(raw)
	u.Host = addr
	return u.String()
}

// DelaySuffixes end the names of a shared queue's delay queues, as the
// rabbitmq package declares them (its tests check the two agree; this
// package cannot import it).
var DelaySuffixes = []string{".delay.1s", ".delay.2s", ".delay.5s", ".delay.15s", ".delay.30s", ".delay.1m0s", ".delay.2m0s", ".delay.5m0s"}

var seq atomic.Int64

// Prefix returns exchange and queue names unique to t (for the broker's
// Prefix option), and deletes what was declared under them when t ends, so
// tests can share one RabbitMQ and run in parallel.
func Prefix(t testing.TB, url string) string {
	t.Helper()
	prefix := fmt.Sprintf("test-%s-%d-%d", strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()), time.Now().UnixNano(), seq.Add(1))
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, q := range []string{prefix + ".mailer", prefix + ".work", prefix + ".dead", prefix + ".webhooks", prefix + ".hooks"} {
			_, _ = ch.QueueDelete(q, false, false, false)
			for _, d := range DelaySuffixes {
				_, _ = ch.QueueDelete(q+d, false, false, false)
			}
		}
		for _, x := range []string{prefix + ".events", prefix + ".public", prefix + ".dead"} {
			_ = ch.ExchangeDelete(x, false, false)
		}
	})
	return prefix
}
