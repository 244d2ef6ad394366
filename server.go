// Command verifier is the email verification service: sign-up, the
// verification email through a message broker, confirmation, and live
// status over GraphQL subscriptions.
//
// server.go only wires: it reads the configuration once, builds the parts,
// starts them, and stops them in order on SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/verifier/verifier/consumers"
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/broker"
	"github.com/verifier/verifier/internal/broker/inproc"
	"github.com/verifier/verifier/internal/broker/rabbitmq"
	"github.com/verifier/verifier/internal/code"
	"github.com/verifier/verifier/internal/config"
	"github.com/verifier/verifier/internal/database"
	"github.com/verifier/verifier/internal/deadletter"
	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/heaproom"
	"github.com/verifier/verifier/internal/httpapi"
	"github.com/verifier/verifier/internal/janitor"
	"github.com/verifier/verifier/internal/keycmd"
	"github.com/verifier/verifier/internal/logctx"
	"github.com/verifier/verifier/internal/mail"
	"github.com/verifier/verifier/internal/metrics"
	"github.com/verifier/verifier/internal/outbox"
	"github.com/verifier/verifier/internal/password"
	"github.com/verifier/verifier/internal/publicevent"
	"github.com/verifier/verifier/internal/seal"
	"github.com/verifier/verifier/internal/signer"
	"github.com/verifier/verifier/internal/tracing"
	"github.com/verifier/verifier/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "dead-letters" {
		os.Exit(deadletter.Main(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "signing-key" {
		// Ctrl-C while rotate waits between publishing a key and signing
		// with it ends the command with a word on what is left, not
		// silently.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		// The first signal gives the signals back their default: a
		// second one ends the command at once, as it ends the service.
		context.AfterFunc(ctx, stop)
		code := keycmd.Main(ctx, os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) == 2 && isVersionFlag(os.Args[1]) {
		fmt.Println(version.Get())
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrateMain(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 {
		if a := os.Args[1]; a == "-h" || a == "-help" || a == "--help" || a == "help" {
			usage()
			return
		}
		// Say what was not understood before the usage, or an operator
		// who typed -port 9000 sees only a page of settings.
		bad := os.Args[1]
		if isVersionFlag(bad) {
			bad = os.Args[2]
		}
		fmt.Fprintf(os.Stderr, "verifier: unknown argument %q: verifier takes its settings from environment variables (HTTP_ADDR=:9000 verifier), listed below\n", bad)
		usage()
		os.Exit(2)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		printConfigErrors(os.Stderr, err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	password.LeaveRoom()
	heaproom.Keep()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first signal begins a graceful stop, which may take up to
	// SHUTDOWN_GRACE, and longer while the database does not answer the
	// last writes; a second one means now: with the signals given back to
	// their default, it ends the process at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, cfg, log, hooks{}); err != nil {
		log.Error("verifier stopped with an error", "err", err)
		os.Exit(1)
	}
}

// isVersionFlag reports whether arg asks for the version: -version as the
// contract says, and the spellings people type from habit.
func isVersionFlag(arg string) bool {
	return arg == "-version" || arg == "--version" || arg == "version"
}

func usage() {
	fmt.Fprintln(os.Stderr, "Usage: verifier\n       verifier -version\n       verifier migrate [-check] (see 'verifier migrate -help')\n       verifier dead-letters list|replay (see 'verifier dead-letters -help')\n       verifier signing-key list|rotate (see 'verifier signing-key -help')\n\nverifier is configured by environment variables:")
	writeSettings(os.Stderr)
}

// helpWidth is the longest line writeSettings writes: a terminal of 80
// columns shows each line whole.
const helpWidth = 80

// writeSettings lists every setting as NAME=DEFAULT (or NAME (empty)),
// as it would be set, with its meaning wrapped and indented below: a
// table row per setting ran to 255 columns, wrapped by the terminal
// into the next rows' columns.
func writeSettings(w io.Writer) {
	const indent = "      "
	for _, s := range config.Settings {
		if s.Default == "" {
			fmt.Fprintf(w, "  %s (empty)\n", s.Name)
		} else {
			fmt.Fprintf(w, "  %s=%s\n", s.Name, s.Default)
		}
		for _, l := range wrapWords(s.Help, helpWidth-len(indent)) {
			fmt.Fprintf(w, "%s%s\n", indent, l)
		}
	}
}

// wrapWords breaks text into lines of at most width bytes at spaces; a
// word longer than width stands alone on its line.
func wrapWords(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
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
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	// A request's lines carry its request id and trace id.
	return slog.New(logctx.NewHandler(h))
}

// Clean-up of tables that grow with use.
const (
	// sentRecordsKept is how long the record of a sent email (or of a
	// delivered webhook) is kept: far longer than any redelivery can come
	// (which the record turns away), and long enough to answer "was it
	// sent?".
	sentRecordsKept = 7 * 24 * time.Hour
	// devOutboxKept is how many emails the dev outbox keeps: enough to
	// scroll back through a session of manual testing, bounded so a load
	// test against a laptop does not fill its disk.
	devOutboxKept = 500
	// janitorEvery: expired rows cost only space, so a few runs an hour
	// are plenty.
	janitorEvery = 15 * time.Minute
)

// hooks let tests observe and steer a running service.
type hooks struct {
	// listening is called with the bound address once requests are served.
	listening func(addr string)
	// metricsListening is called before listening with METRICS_ADDR's
	// bound address, when set.
	metricsListening func(addr string)
	// now replaces the clock.
	now func() time.Time
	// amqpPrefix isolates a test's RabbitMQ exchanges and queues.
	amqpPrefix string
	// settled is called each time the relay settles a batch or the mailer
	// handles an event, so tests wait on it instead of polling.
	settled func()
	// janitor receives a way to run every clean-up task now, so tests
	// need not wait for the janitor's next round.
	janitor func(runOnce func(context.Context))
	// traced turns tracing on with the provider a test installed
	// (tracing.Install) instead of OTLP.
	traced bool
}

// run serves until ctx ends or a part fails. It builds the parts of the
// role (roleParts), starts them in order, and stops them in reverse, each
// fully before the next: the HTTP server closes websockets with 1012
// "service restart" (clients reconnect) before any subscription ends and
// lets requests in flight finish; then the profiler and the metrics
// server stop, the janitor stops, the hub ends the subscriptions, the
// webhook dispatcher and the relay stop (unconfirmed events stay in the
// outbox), the broker finishes or hands back its deliveries, and the
// database closes last.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, hk hooks) error {
	now := hk.now
	if now == nil {
		now = time.Now
	}
	stopTracing, err := tracing.Start(ctx, cfg.OTLPEndpoint, version.Get().Version)
	if err != nil {
		return fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	defer func() {
		// Last: the spans of the shutdown go out too.
		flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
		defer cancel()
		if err := stopTracing(flush); err != nil {
			log.Warn("could not send the last traces", "err", err)
		}
	}()
	// First: a broken template stops the start, never an email later.
	templates, err := mail.LoadTemplates(cfg.TemplatesDir)
	if err != nil {
		return fmt.Errorf("TEMPLATES_DIR: %w", err)
	}
	if cfg.TemplatesDir != "" {
		log.Info("email templates loaded", "dir", cfg.TemplatesDir, "locales", templates.Locales())
	}
	db, err := database.OpenWith(ctx, cfg.DatabaseURL, database.Options{
		CheckSchema: cfg.Migrate == "off",
		Log:         log.With("component", "migration"),
	})
	if err != nil {
		return err
	}
	defer func() {
		db.Close()
		log.Info("stopped")
	}()

	sealKey, err := seal.KeyFor(ctx, db.Ent, cfg.TokenSealKey)
	if err != nil {
		return err
	}
	box, err := seal.New(sealKey)
	if err != nil {
		return err
	}
	codes, err := code.NewHasher(sealKey)
	if err != nil {
		return err
	}
	keys, err := signer.New(ctx, signer.Options{
		DB:         db.Ent,
		Issuer:     cfg.PublicURL,
		Audience:   cfg.JWTAudience,
		KeyFile:    cfg.SigningKeyFile,
		Seal:       box,
		ReceiptTTL: cfg.ReceiptTTL,
		SessionTTL: cfg.SessionTTL,
		Now:        now,
		Log:        log.With("component", "signer"),
	})
	if err != nil {
		return err
	}

	m := metrics.New()
	m.MailKinds(consumers.MailKinds...)
	m.Backlog(func(ctx context.Context) (int, error) { return db.Ent.OutboxEvent.Query().Count(ctx) })
	records := delivery.New(db.Ent, now)
	m.Deliveries(records.Counts)

	b, brokerName := newBroker(cfg, log.With("component", "broker"), hk.amqpPrefix)
	// Public events name this deployment as their source. With the
	// in-process broker only webhooks can carry them out of the process;
	// without an endpoint nothing would hear them, so none are written.
	_, inProcess := b.(*inproc.Broker)
	events := publicevent.Writer{Source: cfg.PublicURL, Unheard: inProcess && len(cfg.WebhookURLs) == 0}
	records.UseEvents(events)
	// Every role relays: what a process commits (a registration, a
	// delivery's change) goes out at once instead of at another
	// replica's next poll.
	relay := outbox.NewRelay(db.Ent, b, log.With("component", "outbox"), outbox.Options{
		Now:         now,
		OnPublished: func(n int) { m.Published.Add(float64(n)) },
		OnSettled:   hk.settled,
	})
	// A delivery change goes to its watchers at once, not at the next poll.
	records.OnAnnounce(relay.Wake)
	if rb, ok := b.(*rabbitmq.Broker); ok {
		// Events that waited out an outage go as soon as the link is back.
		rb.OnConnect(relay.Retry)
	}

	s := &service{
		cfg: cfg, log: log, hk: hk, now: now,
		db: db, box: box, codes: codes, keys: keys, m: m, records: records, broker: b, relay: relay,
		templates: templates,
		ready: []httpapi.Check{
			{Name: "database", Ping: db.CheckWrite},
			{Name: "broker", Ping: b.Ping},
		},
		logAttrs: []any{"role", cfg.Role, "public_url", cfg.PublicURL, "database", db.Dialect + where(cfg.DatabaseURL), "broker", brokerName + where(cfg.AMQPURL)},
	}
	defer s.close()
	if cfg.DevOutbox {
		// config.Load allows it only on a loopback PUBLIC_URL or with
		// DEV_MAILBOX=true: /dev/mail shows every live link. It lives in
		// the database, so an api lists what a worker kept.
		s.devOutbox = mail.NewDevOutbox(records, log.With("component", "mail"), cfg.PublicURL+"/dev/mail")
		s.tasks = append(s.tasks, janitor.Task{Name: "dev outbox", Run: func(ctx context.Context) (int, error) { return s.devOutbox.Trim(ctx, devOutboxKept) }})
	}
	s.accounts = account.New(account.Options{
		DB:      db.Ent,
		Dialect: db.Dialect,
		Seal:    box,
		Codes:   codes,
		Signer:  keys,
		Hasher:  password.NewHasher(password.OWASP, 0),
		// A watcher that subscribes withDelivery starts from its email's record.
		Deliveries:      records,
		Wake:            relay.Wake,
		Events:          events,
		TokenTTL:        cfg.TokenTTL,
		ResendCooldown:  cfg.ResendCooldown,
		CodeTTL:         cfg.CodeTTL,
		UnverifiedTTL:   cfg.UnverifiedTTL,
		RedirectOrigins: cfg.RedirectOrigins,
		Log:             log.With("component", "account"),
		Now:             now,

		DomainEmailLimit: cfg.DomainEmailLimit,
		GlobalEmailLimit: cfg.GlobalEmailLimit,
	})
	// The janitor runs in every role: it needs only the database, and two
	// janitors deleting the same expired rows do no harm.
	s.tasks = append(s.tasks,
		janitor.Task{Name: "expired tokens and cooldowns", Run: s.accounts.DeleteExpired},
		janitor.Task{Name: "unverified accounts past UNVERIFIED_TTL", Run: s.accounts.DeleteUnverified},
		janitor.Task{Name: "sent email records", Run: func(ctx context.Context) (int, error) { return records.TrimSent(ctx, now().Add(-sentRecordsKept)) }},
	)

	s.parts.Add("broker", b)
	s.parts.Add("outbox relay", relay)
	for _, build := range roleParts[cfg.Role] {
		if err := build(s); err != nil {
			return err
		}
	}
	cleaner := janitor.New(log.With("component", "janitor"), janitorEvery, s.tasks...)
	if hk.janitor != nil {
		hk.janitor(cleaner.RunOnce)
	}
	s.parts.Add("janitor", cleaner)
	// The HTTP server last: nothing is served before everything it uses
	// runs, and it stops first.
	edge, ops := s.edge()
	if ops != nil {
		// Before the public server, after it in the stop: health stays
		// readable while requests drain.
		s.parts.Add("metrics server (METRICS_ADDR)", ops)
	}
	var profiler *httpapi.Server
	if s.cfg.PprofAddr != "" {
		profiler = httpapi.NewProfilerServer(httpapi.ServerOptions{Addr: s.cfg.PprofAddr, Grace: s.cfg.ShutdownGrace, Log: log.With("component", "pprof")})
		s.parts.Add("profiler (PPROF_ADDR)", profiler)
	}
	s.parts.Add("http server (HTTP_ADDR)", edge)

	if err := s.parts.Start(ctx); err != nil {
		return err
	}
	defer s.parts.Stop()
	log.Info("verifier is listening", append([]any{"addr", edge.Addr()}, append(s.logAttrs, "version", version.Get().Version)...)...)
	if ops != nil {
		log.Info("metrics and health on their own port", "addr", ops.Addr())
		if hk.metricsListening != nil {
			hk.metricsListening(ops.Addr())
		}
	}
	if profiler != nil {
		log.Info("profiler listening", "addr", profiler.Addr())
	}
	if hk.listening != nil {
		hk.listening(edge.Addr())
	}

	if err := s.parts.Wait(ctx); err != nil {
		return err
	}
	log.Info("shutting down", "grace", cfg.ShutdownGrace)
	return nil
}

// newBroker returns the in-process broker, or RabbitMQ when AMQP_URL is
// set, and its name for the log.
func newBroker(cfg config.Config, log *slog.Logger, prefix string) (broker.Broker, string) {
	if cfg.AMQPURL == "" {
		return inproc.New(log, inproc.Options{StopGrace: cfg.ShutdownGrace}), "in-process"
	}
	return rabbitmq.New(cfg.AMQPURL, log, rabbitmq.Options{Prefix: prefix, StopGrace: cfg.ShutdownGrace}), "RabbitMQ"
}

// where names the server a URL points to for the start line, so an
// operator sees which database, broker or mail server this process uses:
// " at host:port/path" (a PostgreSQL database, a RabbitMQ vhost), or
// " at PATH" for SQLite. Never the user, the password or the query. Empty
// when there is nothing to name.
func where(raw string) string {
	if path, ok := strings.CutPrefix(raw, "sqlite:"); ok {
		path, _, _ = strings.Cut(path, "?")
		return " at " + path
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return " at " + u.Host + u.EscapedPath()
}
