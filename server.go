// Command verifier is the email verification service: sign-up, the
// verification email through a message broker, confirmation, and live
// status over GraphQL subscriptions.
//
// server.go only wires: it reads the configuration once, builds the parts,
// starts them, and stops them in order on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/verifier/verifier/consumers"
	"github.com/verifier/verifier/graph"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/inproc"
	"github.com/verifier/verifier/internal/broker/rabbitmq"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/deadletter"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/httpapi"
	"github.com/verifier/verifier/internal/hub"
	"github.com/verifier/verifier/internal/janitor"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/ratelimit"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/wsgorilla"
	"github.com/verifier/verifier/web"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dead-letters" {
		os.Exit(deadletter.Main(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 {
		usage()
		if a := os.Args[1]; a == "-h" || a == "-help" || a == "--help" || a == "help" {
			return
		}
		os.Exit(2)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		printConfigErrors(os.Stderr, err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, hooks{}); err != nil {
		log.Error("verifier stopped with an error", "err", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: verifier\n       verifier dead-letters list|replay (see 'verifier dead-letters -help')\n\nverifier is configured by environment variables:")
	w := tabwriter.NewWriter(os.Stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  VARIABLE\tDEFAULT\tMEANING")
	for _, s := range config.Settings {
		def := s.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", s.Name, def, s.Help)
	}
	w.Flush()
}

// printConfigErrors lists every configuration problem, one a line. The
// messages come from config.Load, which never includes a password.
func printConfigErrors(w io.Writer, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	fmt.Fprintf(w, "verifier: invalid configuration, not starting:\n")
	for _, e := range errs {
		fmt.Fprintf(w, "  - %v\n", e)
	}
	fmt.Fprintf(w, "Run 'verifier -help' for the settings.\n")
}

func newLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// sentRecordsKept is how long the record of a sent email is kept: far
// longer than any redelivery can come (which the record turns away), and
// long enough to answer "was it sent?".
const sentRecordsKept = 7 * 24 * time.Hour

// hooks let tests observe and steer a running service.
type hooks struct {
	// listening is called with the bound address once requests are served.
	listening func(addr string)
	// now replaces the clock.
	now func() time.Time
	// amqpPrefix isolates a test's RabbitMQ exchanges and queues.
	amqpPrefix string
}

// run serves until ctx ends, then shuts down gracefully: websockets are
// closed with 1012 "service restart" (clients reconnect) before any
// subscription ends, requests in flight finish, the relay stops
// (unconfirmed events stay in the outbox), and broker deliveries are
// finished or handed back.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, hk hooks) error {
	now := hk.now
	if now == nil {
		now = time.Now
	}
	db, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer func() {
		db.Close()
		log.Info("stopped")
	}()

	sealKey := cfg.TokenSealKey
	if sealKey == nil {
		if sealKey, err = seal.LoadOrCreate(ctx, db.Ent); err != nil {
			return err
		}
	}
	box, err := seal.New(sealKey)
	if err != nil {
		return err
	}

	m := metrics.New()
	m.Backlog(func(ctx context.Context) (int, error) { return db.Ent.OutboxEvent.Query().Count(ctx) })
	records := delivery.New(db.Ent, now)
	m.Deliveries(records.Counts)
	subs := hub.New()
	subs.OnChange = func(d int) { m.Subscriptions.Add(float64(d)) }

	var relay *outbox.Relay
	var b broker.Broker
	brokerName := "in-process"
	if cfg.AMQPURL == "" {
		b = inproc.New(log.With("component", "broker"))
	} else {
		brokerName = "RabbitMQ"
		// Events that waited out an outage go as soon as the link is back.
		b = rabbitmq.New(cfg.AMQPURL, log.With("component", "broker"), rabbitmq.Options{
			Prefix:    hk.amqpPrefix,
			OnConnect: func() { relay.Retry() },
		})
	}
	relay = outbox.NewRelay(db.Ent, b, log.With("component", "outbox"), outbox.Options{
		Now:         now,
		OnPublished: func(n int) { m.Published.Add(float64(n)) },
	})

	var sender mail.Sender
	var devOutbox *mail.DevOutbox
	mailName := "dev outbox at " + cfg.PublicURL + "/dev/mail"
	if cfg.DevOutbox {
		// config.Load allows it only on a loopback PUBLIC_URL or with
		// DEV_MAILBOX=true: /dev/mail shows every live link.
		devOutbox = mail.NewDevOutbox(db.Ent, log.With("component", "mail"), cfg.PublicURL+"/dev/mail")
		sender = devOutbox
	} else {
		s, err := mail.NewSMTP(cfg.SMTPURL, cfg.MailFrom, cfg.SMTPConnections, log.With("component", "mail"))
		if err != nil {
			return err
		}
		defer s.Close()
		sender, mailName = s, "SMTP"
	}

	mailer := &consumers.Mailer{
		Seal:      box,
		Sender:    sender,
		Records:   records,
		PublicURL: cfg.PublicURL,
		Log:       log.With("component", "mailer"),
		Now:       now,
		// One email in flight per SMTP connection kept open.
		Concurrency: cfg.SMTPConnections,
		Metrics: consumers.MailMetrics{
			Sent:    func(k string) { m.EmailsSent.WithLabelValues(k).Inc() },
			Failed:  func(k string) { m.EmailsFailed.WithLabelValues(k).Inc() },
			Retried: func(k string) { m.EmailRetries.WithLabelValues(k).Inc() },
			Skipped: func(k string) { m.EmailsSkipped.WithLabelValues(k).Inc() },
			Problem: m.SetMailProblem,
		},
	}
	notifier := &consumers.Notifier{Hub: subs}
	if err := errors.Join(b.Consume(mailer.Queue(), mailer.Handle), b.Consume(notifier.Queue(), notifier.Handle)); err != nil {
		return err
	}

	accounts := account.New(account.Options{
		DB:             db.Ent,
		Dialect:        db.Dialect,
		Seal:           box,
		Hasher:         password.NewHasher(password.OWASP, 0),
		Hub:            subs,
		Wake:           relay.Wake,
		TokenTTL:       cfg.TokenTTL,
		ResendCooldown: cfg.ResendCooldown,
		Log:            log.With("component", "account"),
		Now:            now,

		DomainEmailLimit: cfg.DomainEmailLimit,
		GlobalEmailLimit: cfg.GlobalEmailLimit,
	})
	// Every websocket, so shutdown can close them all with one code.
	sockets := wsgorilla.NewConns()
	gql := graph.NewHandler(&graph.Resolver{
		Accounts:    accounts,
		ClientLimit: ratelimit.New(cfg.ClientLimit, now),
		VerifyLimit: ratelimit.New(cfg.VerifyLimit, now),
	}, graph.HandlerOptions{
		Log: log.With("component", "graphql"),
		Websocket: wsgorilla.Implementation{
			Upgrader: websocket.Upgrader{
				HandshakeTimeout: 10 * time.Second,
				// httpapi checks the origin before the upgrade, with the
				// contract's rules.
				CheckOrigin:     func(*http.Request) bool { return true },
				ReadBufferSize:  wsgorilla.ReadBufferSize,
				WriteBufferPool: wsgorilla.NewWriteBufferPool(),
			},
			Conns:        sockets,
			PingInterval: wsgorilla.PingInterval,
		},
		MaxMessageBytes:           64 << 10,
		MaxSubscriptionsPerSocket: cfg.WSMaxSubscriptions,
		MaxSubscriptions:          cfg.MaxSubscriptions,
	})
	handler := httpapi.New(httpapi.Options{
		GraphQL:   gql,
		Web:       web.Handler(),
		Metrics:   m,
		DevOutbox: devOutbox,
		// DEV_MAILBOX=true opens it to every client on purpose.
		DevMailLoopbackOnly: cfg.DevMailbox == "auto",
		Ready: []httpapi.Check{
			{Name: "database", Ping: db.CheckWrite},
			{Name: "broker", Ping: b.Ping},
			// A mail server that refuses our sender or credentials refuses
			// every replica: reported, but no reason to take this one out.
			{Name: "mail", Ping: func(context.Context) error { return mailer.Problem() }, Advisory: true},
		},
		PublicURL:           cfg.PublicURL,
		AllowedOrigins:      cfg.AllowedOrigins,
		Log:                 log.With("component", "http"),
		MaxBodyBytes:        64 << 10,
		TrustProxy:          cfg.TrustProxy,
		MaxSocketsPerClient: cfg.WSMaxSockets,
	})

	if err := b.Start(ctx); err != nil {
		return err
	}
	defer b.Stop(cfg.ShutdownGrace)
	if err := relay.Start(ctx); err != nil {
		return err
	}
	defer relay.Stop()

	tasks := []janitor.Task{
		{Name: "expired tokens and cooldowns", Run: accounts.DeleteExpired},
		{Name: "sent email records", Run: func(ctx context.Context) (int, error) { return records.TrimSent(ctx, now().Add(-sentRecordsKept)) }},
	}
	if devOutbox != nil {
		tasks = append(tasks, janitor.Task{Name: "dev outbox", Run: func(ctx context.Context) (int, error) { return devOutbox.Trim(ctx, 500) }})
	}
	cleaner := janitor.New(log.With("component", "janitor"), 15*time.Minute, tasks...)
	if err := cleaner.Start(ctx); err != nil {
		return err
	}
	defer cleaner.Stop()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           wsgorilla.Detach(handler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("verifier is listening",
		"addr", ln.Addr().String(), "public_url", cfg.PublicURL,
		"database", db.Dialect, "broker", brokerName, "mail", mailName)
	if hk.listening != nil {
		hk.listening(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	// Websockets first, with 1012 "service restart", which standard
	// clients (graphql-ws, Apollo, urql) answer by reconnecting and
	// subscribing again. Only then may subscriptions end: after its close
	// frame nothing more reaches a client, so none gets "complete" for a
	// watch that is still UNVERIFIED.
	sockets.CloseAll(shutdownCtx, websocket.CloseServiceRestart, "service restart")
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("requests still running at the end of the grace period", "err", err)
	}
	subs.CloseAll()
	// The deferred calls stop the janitor, the relay (unconfirmed events
	// stay in the outbox), then the broker, and close the database last.
	return nil
}
