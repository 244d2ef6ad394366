package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/verifier/verifier/consumers"
	"github.com/verifier/verifier/docs"
	"github.com/verifier/verifier/graph"
	admingraph "github.com/verifier/verifier/graph/admin"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/admin"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/inproc"
	"github.com/verifier/verifier/internal/broker/rabbitmq"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/gqlws"
	"github.com/verifier/verifier/internal/httpapi"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/janitor"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
	"github.com/verifier/verifier/internal/startstop"
	"github.com/verifier/verifier/internal/webhook"
	"github.com/verifier/verifier/web"
)

// roleParts lists, per ROLE, what a process builds on top of what every
// process has (the database, keys, broker, outbox relay, janitor and an
// HTTP server for health), in start order. An api never sends: it has no
// mailer, no webhook consumer or dispatcher and no SMTP connection. A
// worker serves no GraphQL, web app or websocket and keeps no hub.
var roleParts = map[string][]func(*service) error{
	config.RoleAll:    {(*service).sendMail, (*service).sendWebhooks, (*service).serveAPI},
	config.RoleAPI:    {(*service).keepWorkersMail, (*service).serveAPI},
	config.RoleWorker: {(*service).sendMail, (*service).sendWebhooks},
}

// keepWorkersMail declares, on RabbitMQ, the shared queues of the
// worker's consumers, so what an api publishes before any worker ever
// connected (a fresh RabbitMQ, a worker that crash-loops) waits in them
// instead of being confirmed and dropped (rabbitmq.Broker.Declare). The
// webhook queue only where WEBHOOK_URL is set: without a dispatcher
// consuming it, nothing would ever empty it.
func (s *service) keepWorkersMail() error {
	rb, ok := s.broker.(*rabbitmq.Broker)
	if !ok {
		return nil // in-process: ROLE=all, its own consumers
	}
	if err := rb.Declare(broker.Queue{Name: consumers.MailerQueue, Topics: consumers.MailTopics}); err != nil {
		return err
	}
	if len(s.cfg.WebhookURLs) == 0 {
		return nil
	}
	return rb.Declare(webhook.Subscription())
}

// service is what run builds, shared with the parts of each role.
type service struct {
	cfg config.Config
	log *slog.Logger
	hk  hooks
	now func() time.Time

	db        *database.DB
	box       *seal.Box
	codes     *code.Hasher
	keys      *signer.Signer
	m         *metrics.Metrics
	records   *delivery.Store
	broker    broker.Broker
	relay     *outbox.Relay
	accounts  *account.Service
	devOutbox *mail.DevOutbox
	templates *mail.Templates
	// hooks is the webhook dispatcher, nil when this process sends none.
	hooks *webhook.Dispatcher

	// Filled by the parts: the janitor's tasks, /readyz's checks, the
	// fields of the "listening" log line, what HTTP serves besides
	// health, and the parts to start, in order.
	tasks    []janitor.Task
	ready    []httpapi.Check
	logAttrs []any
	http     *httpapi.Options
	sockets  *gqlws.Conns
	parts    startstop.Group
	closers  []func()
}

// mailInFlight is how many emails the mailer handles at once. Far more
// than SMTP_CONNECTIONS, which bounds only the SMTP sessions: an email
// spends most of its time on its delivery record (QUEUED before the send,
// SENT after), and the more of them wait for SQLite's single writer, the
// more share each COMMIT (a backlog drained at 1,600–1,800 emails/s with
// 8 in flight, 2,200–2,700 with 64, 2,800–3,500 with 256; make bench, A/B).
// The outbox relay lets a topic have as many in flight
// (outbox.DefaultMaxInFlight / 4).
const mailInFlight = 256

// sendMail runs the mailer, over SMTP or into the dev outbox.
func (s *service) sendMail() error {
	sender, mailName := mail.Sender(s.devOutbox), "dev outbox at "+s.cfg.PublicURL+"/dev/mail"
	if s.devOutbox == nil {
		smtp, err := mail.NewSMTP(s.cfg.SMTPURL, s.cfg.MailFrom, s.cfg.SMTPConnections, s.log.With("component", "mail"))
		if err != nil {
			return err
		}
		s.closers = append(s.closers, func() { smtp.Close() })
		sender, mailName = smtp, "SMTP"+where(s.cfg.SMTPURL)
	}
	m := s.m
	mailer := &consumers.Mailer{
		Seal:        s.box,
		Sender:      sender,
		Records:     s.records,
		Templates:   s.templates,
		PublicURL:   s.cfg.PublicURL,
		Log:         s.log.With("component", "mailer"),
		Now:         s.now,
		Concurrency: max(mailInFlight, s.cfg.SMTPConnections),
		HeldUpTo:    s.cfg.ResendCooldown,
		Handled:     s.hk.settled,
		Metrics: consumers.MailMetrics{
			Sent:    func(k string) { m.EmailsSent.WithLabelValues(k).Inc() },
			Failed:  func(k string) { m.EmailsFailed.WithLabelValues(k).Inc() },
			Retried: func(k string) { m.EmailRetries.WithLabelValues(k).Inc() },
			Skipped: func(k string) { m.EmailsSkipped.WithLabelValues(k).Inc() },
			Problem: m.SetMailProblem,
		},
	}
	// A mail server that refuses our sender or credentials refuses every
	// replica: reported, but no reason to take this one out.
	s.ready = append(s.ready, httpapi.Check{Name: "mail", Ping: func(context.Context) error { return mailer.Problem() }, Advisory: true})
	s.logAttrs = append(s.logAttrs, "mail", mailName)
	return s.broker.Consume(mailer.Queue(), mailer.Handle)
}

// sendWebhooks runs, when WEBHOOK_URL is set, a consumer of the public
// events that records one delivery per endpoint, and the dispatcher that
// sends them, apart from the mail path.
func (s *service) sendWebhooks() error {
	s.logAttrs = append(s.logAttrs, "webhooks", len(s.cfg.WebhookURLs))
	if len(s.cfg.WebhookURLs) == 0 {
		// Deliveries recorded while WEBHOOK_URL was set would wait
		// forever, pending and unseen: the janitor gives up on them,
		// FAILED with the reason, as a dispatcher does at its start for an
		// endpoint taken out; with their endpoint back in WEBHOOK_URL the
		// admin API lists and replays them.
		s.tasks = append(s.tasks, janitor.Task{Name: "webhooks without an endpoint", Run: func(ctx context.Context) (int, error) {
			return webhook.GiveUpRemoved(ctx, s.db.Ent, nil, s.now())
		}})
		return nil
	}
	hooks, err := webhook.New(webhook.Options{
		DB:        s.db.Ent,
		Endpoints: s.cfg.WebhookURLs,
		Secret:    s.cfg.WebhookSecret.Reveal(),
		Log:       s.log.With("component", "webhooks"),
		Now:       s.now,
		Metrics: webhook.Metrics{
			Delivered: s.m.WebhooksDelivered.Inc,
			Failed:    s.m.WebhooksFailed.Inc,
			Retried:   s.m.WebhookRetries.Inc,
		},
		OnSettled: s.hk.settled,
	})
	if err != nil {
		return err
	}
	s.tasks = append(s.tasks, janitor.Task{Name: "delivered webhooks", Run: func(ctx context.Context) (int, error) {
		return hooks.TrimDelivered(ctx, s.now().Add(-sentRecordsKept))
	}})
	s.hooks = hooks
	s.parts.Add("webhooks", hooks)
	return s.broker.Consume(hooks.Queue(), hooks.Handle)
}

// serveAPI serves GraphQL, the web app and subscriptions, fed by the
// notifier through the hub.
func (s *service) serveAPI() error {
	subs := hub.New()
	subs.OnChange = func(d int) { s.m.Subscriptions.Add(float64(d)) }
	// Subscriptions watch through the hub; no other role takes any.
	s.accounts.Hub = subs
	notifier := &consumers.Notifier{Hub: subs}
	if _, inProcess := s.broker.(*inproc.Broker); inProcess {
		// One process holds every watcher: delivery changes reach them
		// straight from the records, not through the outbox.
		s.records.HearLocally(subs.PublishDelivery)
	}
	if err := s.broker.Consume(notifier.Queue(), notifier.Handle); err != nil {
		return err
	}
	s.parts.Add("hub", subs)

	cfg := s.cfg
	ws := httpapi.DefaultWebsocketPolicy(cfg.WSMaxSubscriptions, cfg.MaxSubscriptions, cfg.WSMaxSockets)
	// Every websocket, so the server's Stop can close them all with one code.
	s.sockets = gqlws.NewConns()
	gql := graph.NewHandler(&graph.Resolver{
		Accounts:    s.accounts,
		ClientLimit: ratelimit.New(cfg.ClientLimit, s.now),
		VerifyLimit: ratelimit.New(cfg.VerifyLimit, s.now),
	}, graph.HandlerOptions{
		Log:                       s.log.With("component", "graphql"),
		Websocket:                 ws.Transport(s.sockets),
		MaxSubscriptionsPerSocket: ws.MaxSubscriptionsPerSocket,
		MaxSubscriptions:          ws.MaxSubscriptions,
		// Event streams are kept alive as often as websockets are pinged.
		StreamKeepAlive: ws.KeepAlive,
	})
	adminLog := s.log.With("component", "admin")
	adminAPI := admingraph.NewHandler(&admingraph.Resolver{Admin: &admin.Service{
		DB: s.db.Ent, Accounts: s.accounts, Deliveries: s.records, Webhooks: webhooksOrNil(s.hooks), Log: adminLog,
	}}, adminLog)
	s.http = &httpapi.Options{
		GraphQL:    gql,
		Web:        web.Handler(),
		Playground: web.Playground(),
		JWKS:       s.keys,
		AsyncAPI:   docs.AsyncAPI,
		DevOutbox:  s.devOutbox,
		// DEV_MAILBOX=true opens it to every client on purpose.
		DevMailLoopbackOnly: cfg.DevMailbox == "auto",
		// Off (404) while ADMIN_TOKEN is empty.
		Admin:          adminAPI,
		AdminToken:     cfg.AdminToken.Reveal(),
		PublicOrigin:   cfg.PublicOrigin,
		AllowedOrigins: cfg.AllowedOrigins,
		TrustProxy:     cfg.TrustProxy,
		Websocket:      ws,
	}
	return nil
}

// edge is the HTTP server: the API when the role serves one, otherwise
// health, readiness and metrics alone; and, with METRICS_ADDR, the server
// of metrics and health on their own port (nil without).
func (s *service) edge() (edge, ops *httpapi.Server) {
	o := httpapi.Options{HealthOnly: true}
	if s.http != nil {
		o = *s.http
	}
	o.Metrics, o.Ready, o.Log = s.m, s.ready, s.log.With("component", "http")
	o.MetricsElsewhere = s.cfg.MetricsAddr != ""
	o.Trace = s.cfg.OTLPEndpoint != "" || s.hk.traced
	edge = httpapi.NewServer(httpapi.ServerOptions{
		Addr:    s.cfg.HTTPAddr,
		Grace:   s.cfg.ShutdownGrace,
		Sockets: s.sockets,
		Log:     s.log.With("component", "http"),
	}, o)
	if s.cfg.MetricsAddr != "" {
		ops = httpapi.NewOpsServer(httpapi.ServerOptions{Addr: s.cfg.MetricsAddr, Grace: s.cfg.ShutdownGrace, Log: s.log.With("component", "metrics")}, o)
	}
	return edge, ops
}

// close releases what the parts hold beyond the start/stop group.
func (s *service) close() {
	for _, c := range s.closers {
		c()
	}
}

// webhooksOrNil is hooks as the admin service takes it: a nil interface,
// not a nil pointer in one, when this process sends no webhooks.
func webhooksOrNil(hooks *webhook.Dispatcher) admin.Webhooks {
	if hooks == nil {
		return nil
	}
	return hooks
}
