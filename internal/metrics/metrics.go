// Package metrics defines the Prometheus metrics served at /metrics.
package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/verifier/verifier/internal/version"
)

// Metrics is every collector of the service, on its own registry (no
// globals, so tests can run servers side by side).
type Metrics struct {
	Registry      *prometheus.Registry
	Requests      *prometheus.CounterVec
	Duration      *prometheus.HistogramVec
	EmailsSent    *prometheus.CounterVec
	EmailsFailed  *prometheus.CounterVec
	EmailRetries  *prometheus.CounterVec
	EmailsSkipped *prometheus.CounterVec
	// MailProblem is 1 while the mail server refuses our sender or session.
	MailProblem   prometheus.Gauge
	Published     prometheus.Counter
	Subscriptions prometheus.Gauge
	// WebhooksDelivered, WebhooksFailed (given up on after a day) and
	// WebhookRetries (attempts that failed and will be retried), over
	// every endpoint: per-endpoint labels would let a setting mint series.
	WebhooksDelivered prometheus.Counter
	WebhooksFailed    prometheus.Counter
	WebhookRetries    prometheus.Counter
}

// New registers the service's metrics and the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "verifier_http_request_duration_seconds", Help: "HTTP request latency by route (websockets excluded).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		EmailsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_emails_sent_total", Help: "Emails handed to SMTP (or the dev outbox), by kind.",
		}, []string{"kind"}),
		EmailsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_emails_failed_total", Help: "Emails dead-lettered (delivery record FAILED) after a permanent failure, by kind.",
		}, []string{"kind"}),
		EmailRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_email_retries_total", Help: "Send attempts that failed and will be retried, by kind.",
		}, []string{"kind"}),
		EmailsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifier_emails_skipped_total", Help: "Redelivered email events not sent again because their delivery record says SENT, by kind.",
		}, []string{"kind"}),
		MailProblem: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verifier_mail_server_problem", Help: "1 while the mail server refuses our sender or session (authentication, MAIL FROM): emails wait until someone fixes the settings or the server.",
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verifier_outbox_published_total", Help: "Outbox events confirmed by the broker.",
		}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verifier_subscriptions_open", Help: "Status subscriptions open in this process.",
		}),
		WebhooksDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verifier_webhooks_delivered_total", Help: "Webhook deliveries answered with a 2xx.",
		}),
		WebhooksFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verifier_webhooks_failed_total", Help: "Webhook deliveries given up on after a day of retries (FAILED, to replay).",
		}),
		WebhookRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verifier_webhook_retries_total", Help: "Webhook attempts that failed (no 2xx within 10 s) and will be retried.",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.Duration, m.EmailsSent, m.EmailsFailed, m.EmailRetries, m.EmailsSkipped, m.MailProblem, m.Published, m.Subscriptions,
		m.WebhooksDelivered, m.WebhooksFailed, m.WebhookRetries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Which build answers, joinable to any series by instance (the
	// Prometheus convention for *_build_info).
	v := version.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "verifier_build_info", Help: "Always 1; the labels say which build is running.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(v.Version, v.Revision, v.GoVersion).Set(1)
	m.Registry.MustRegister(build)
	return m
}

// MailKinds makes every email counter present from the start, at 0, for
// each kind: rate() and alerts over a series that appears only with its
// first failure miss that failure.
func (m *Metrics) MailKinds(kinds ...string) {
	for _, k := range kinds {
		for _, c := range []*prometheus.CounterVec{m.EmailsSent, m.EmailsFailed, m.EmailRetries, m.EmailsSkipped} {
			c.WithLabelValues(k)
		}
	}
}

// Routes makes the request counter (at code 200) and the latency
// histogram present from the start for each route, method pair; other
// codes appear with their first request, as their set is open.
func (m *Metrics) Routes(routes ...[2]string) {
	for _, r := range routes {
		m.Requests.WithLabelValues(r[0], r[1], "200")
		m.Duration.WithLabelValues(r[0])
	}
}

// Backlog registers a gauge of outbox events waiting, read on each scrape.
func (m *Metrics) Backlog(count func(context.Context) (int, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verifier_outbox_backlog", Help: "Outbox events not yet confirmed by the broker (-1 if unreadable).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}

// SetMailProblem sets verifier_mail_server_problem.
func (m *Metrics) SetMailProblem(on bool) {
	if on {
		m.MailProblem.Set(1)
	} else {
		m.MailProblem.Set(0)
	}
}

// Deliveries registers a gauge of email delivery records by state (QUEUED,
// DEFERRED, FAILED; SENT only grows and is verifier_emails_sent_total),
// read on each scrape. FAILED rows are dead letters waiting for an
// operator.
func (m *Metrics) Deliveries(count func(context.Context) (map[string]int, error)) {
	m.Registry.MustRegister(&deliveries{count: count, desc: prometheus.NewDesc(
		"verifier_email_deliveries", "Email delivery records by state, but SENT (FAILED: dead letters; -1 if unreadable).", []string{"state"}, nil)})
}

// scrapeTimeout bounds each database read behind a scrape: a scrape must
// not hang on a stuck database (the gauge then reads -1).
const scrapeTimeout = 2 * time.Second

type deliveries struct {
	count func(context.Context) (map[string]int, error)
	desc  *prometheus.Desc
}

func (d *deliveries) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

func (d *deliveries) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := d.count(ctx)
	if err != nil {
		for _, state := range []string{"QUEUED", "DEFERRED", "FAILED"} {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, -1, state)
		}
		return
	}
	for state, v := range n {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(v), state)
	}
}
