// Package config reads the service's settings from the environment, once, at
// start. Every setting is documented in the README and in the public contract.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/verifier/verifier/internal/seal"
)

// Config is every setting the service reads. server.go builds it once and
// hands the parts each component needs.
type Config struct {
	HTTPAddr       string        // HTTP_ADDR
	DatabaseURL    string        // DATABASE_URL
	AMQPURL        string        // AMQP_URL; empty selects the in-process broker
	SMTPURL        string        // SMTP_URL; empty selects the dev outbox, if DevOutbox
	MailFrom       string        // MAIL_FROM
	PublicURL      string        // PUBLIC_URL, without a trailing slash; unset: localURL(HTTPAddr)
	TokenTTL       time.Duration // TOKEN_TTL
	ResendCooldown time.Duration // RESEND_COOLDOWN
	AllowedOrigins []string      // ALLOWED_ORIGINS, comma separated
	PublicOrigin   string        // PUBLIC_URL's origin as browsers send it (lower case, no default port); always allowed
	ClientLimit    int           // CLIENT_RATE_LIMIT: costly mutations per client a minute; 0 is off
	VerifyLimit    int           // VERIFY_RATE_LIMIT: verifyEmail calls per client a minute; 0 is off
	TrustProxy     int           // TRUST_PROXY: how many reverse proxies in front add X-Forwarded-For
	// DomainEmailLimit and GlobalEmailLimit cap the emails queued per
	// hour to one domain and in all (DOMAIN_EMAIL_LIMIT,
	// GLOBAL_EMAIL_LIMIT); 0 is no cap.
	DomainEmailLimit int
	GlobalEmailLimit int
	// DevMailbox is DEV_MAILBOX: auto, true or false.
	DevMailbox string
	// DevOutbox is DEV_MAILBOX resolved: mail is kept in the dev outbox
	// (and listed at /dev/mail) instead of sent. Load never returns it
	// true with SMTP_URL set, nor false with SMTP_URL empty.
	DevOutbox bool
	// TokenSealKey is TOKEN_SEAL_KEY decoded; nil means a key generated
	// once and kept in the database.
	TokenSealKey []byte
	// Websocket and subscription caps: WS_MAX_SUBSCRIPTIONS per socket,
	// WS_MAX_SOCKETS per client address, MAX_SUBSCRIPTIONS in all.
	WSMaxSubscriptions int
	WSMaxSockets       int
	MaxSubscriptions   int
	// UnverifiedTTL is UNVERIFIED_TTL: how long an UNVERIFIED account
	// outlives its last registration.
	UnverifiedTTL time.Duration
	CodeTTL       time.Duration // CODE_TTL: lifetime of a one-time code
	ReceiptTTL    time.Duration // RECEIPT_TTL: lifetime of a receipt
	SessionTTL    time.Duration // SESSION_TTL: lifetime of a signIn token
	// SigningKeyFile is SIGNING_KEY_FILE: a PEM Ed25519 private key; empty
	// means one generated once and kept in the database.
	SigningKeyFile string
	JWTAudience    string // JWT_AUDIENCE: aud of receipts and session tokens; empty: none
	// TemplatesDir is TEMPLATES_DIR: a folder of email templates laid
	// over the built-in ones, one folder per locale; empty: the built-in
	// ones alone. Load checks it is a folder; server.go parses and renders
	// every template in it before anything starts.
	TemplatesDir string
	// RedirectOrigins are the origins a redirectTo may have: PUBLIC_URL's
	// and REDIRECT_ALLOWLIST's.
	RedirectOrigins []string
	// WebhookURLs are WEBHOOK_URL's endpoints; none: no webhooks.
	WebhookURLs []string
	// WebhookSecret is WEBHOOK_SECRET, whsec_ + base64 of at least
	// minWebhookSecretBytes bytes; set whenever WebhookURLs is.
	WebhookSecret Secret
	// AdminToken is ADMIN_TOKEN, the bearer token of the admin API (at
	// least minAdminTokenLen characters); empty: the admin API is off.
	AdminToken Secret
	// SMTPConnections is SMTP_CONNECTIONS: emails sent at once.
	SMTPConnections int
	ShutdownGrace   time.Duration // SHUTDOWN_GRACE
	LogLevel        string        // LOG_LEVEL: debug, info, warn, error
	LogFormat       string        // LOG_FORMAT: text or json
	// Role is ROLE: which parts this process runs (RoleAll, RoleAPI,
	// RoleWorker).
	Role string
	// Migrate is MIGRATE: auto applies pending schema migrations at start;
	// off refuses to start while any is pending.
	Migrate string
	// MetricsAddr is METRICS_ADDR: a listener of its own for /metrics,
	// /healthz and /readyz; empty: the public one serves them.
	MetricsAddr string
	// PprofAddr is PPROF_ADDR: a listener of its own for Go's profiler
	// (net/http/pprof); empty: none.
	PprofAddr string
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT: traces are exported
	// over OTLP/HTTP when set (the SDK reads it and the other OTEL_*
	// variables itself); empty: no tracing at all.
	OTLPEndpoint string
}

// The roles a process can take (ROLE). One process of RoleAll is the whole
// service; RoleAPI and RoleWorker split it in two, sharing the database
// and RabbitMQ, so the HTTP side and the sending side scale (and fail)
// apart.
const (
	// RoleAll runs everything in one process.
	RoleAll = "all"
	// RoleAPI serves HTTP and GraphQL, relays the outbox and feeds
	// subscriptions; it never sends mail or webhooks.
	RoleAPI = "api"
	// RoleWorker sends mail and webhooks; on HTTP it answers only
	// /healthz, /readyz and /metrics.
	RoleWorker = "worker"
)

// Setting documents one environment variable; the list drives both Load and
// the -help output so the two cannot drift apart.
type Setting struct {
	Name, Default, Help string
}

// Settings lists every variable Load reads, with its default.
var Settings = []Setting{
	{"HTTP_ADDR", ":8080", "listen address, host:port (port 0: any free port)"},
	{"DATABASE_URL", "sqlite:data/verifier.db", "sqlite:PATH or postgres://user:pass@host:port/db?sslmode=disable"},
	{"AMQP_URL", "", "empty: in-process broker; amqp://user:pass@host:port/vhost: RabbitMQ"},
	{"SMTP_URL", "", "empty: dev outbox at /dev/mail; smtp://[user:pass@]host:port (smtps:// for implicit TLS; no port: 25, smtps 465)"},
	{"MAIL_FROM", "no-reply@localhost", "sender address, e.g. no-reply@example.com or 'Example <no-reply@example.com>'"},
	{"PUBLIC_URL", "http://localhost:<HTTP_ADDR's port>", "base of links in emails: http(s)://host[:port][/path], no query or fragment"},
	{"TOKEN_TTL", "24h", "verification and watch token lifetime (1s to 24h; hours in production)"},
	{"RESEND_COOLDOWN", "60s", "least time between two emails to one address (1s to 24h; shorter than TOKEN_TTL and CODE_TTL, or a held email's link or code can expire before it goes out)"},
	{"ALLOWED_ORIGINS", "", "extra origins allowed to open websockets and make credentialed requests, comma separated"},
	{"CLIENT_RATE_LIMIT", "30", "register, resend and changeEmail calls allowed per client a minute (0: no limit); IPv6 clients count per /64"},
	{"VERIFY_RATE_LIMIT", "120", "verifyEmail, verifyEmailWithCode, signIn and confirmEmailChange calls allowed per client a minute (0: no limit)"},
	{"TRUST_PROXY", "0", "how many reverse proxies in front of the service append to X-Forwarded-For (0: use the peer address; true means 1; at most 10); above 0 their X-Request-Id is kept as the request id"},
	{"DOMAIN_EMAIL_LIMIT", "1000", "emails queued per hour to one domain (0: no cap)"},
	{"GLOBAL_EMAIL_LIMIT", "20000", "emails queued per hour in all (0: no cap)"},
	{"DEV_MAILBOX", "auto", "with SMTP_URL empty: auto keeps mail at /dev/mail only when PUBLIC_URL is loopback; true on any PUBLIC_URL; false refuses to start (except ROLE=api, which sends no mail)"},
	{"TOKEN_SEAL_KEY", "", "base64 of 32 bytes sealing tokens and codes in the outbox and broker, and keying the codes' hashes (empty: generated once, kept in the database)"},
	{"UNVERIFIED_TTL", "168h", "how long an unconfirmed account is kept after its last registration (1h to 8760h)"},
	{"CODE_TTL", "15m", "lifetime of a one-time code (1m to 24h)"},
	{"RECEIPT_TTL", "15m", "lifetime of a receipt (1m to 24h, whole seconds)"},
	{"SESSION_TTL", "1h", "lifetime of a signIn token (1m to 720h, whole seconds)"},
	{"SIGNING_KEY_FILE", "", "PEM Ed25519 private key signing receipts and signIn tokens (empty: generated once, kept in the database)"},
	{"JWT_AUDIENCE", "", "aud of receipts and signIn tokens (empty: none)"},
	{"REDIRECT_ALLOWLIST", "", "origins, comma separated, allowed in redirectTo besides PUBLIC_URL's"},
	{"TEMPLATES_DIR", "", "folder of email templates replacing the built-in ones, per locale and file (de/verify.txt, …); checked at start"},
	{"WEBHOOK_URL", "", "webhook endpoints, comma separated: every public event is POSTed to each (Standard Webhooks)"},
	{"WEBHOOK_SECRET", "", "whsec_ + base64 of at least 24 random bytes, signing the webhooks; required with WEBHOOK_URL"},
	{"ADMIN_TOKEN", "", "bearer token of the admin API at /admin/query, at least 32 characters (empty: the admin API is off)"},
	{"WS_MAX_SUBSCRIPTIONS", "20", "subscriptions one websocket may hold open"},
	{"WS_MAX_SOCKETS", "32", "websockets and SSE streams one client address may hold open"},
	{"MAX_SUBSCRIPTIONS", "100000", "subscriptions open in this process in all"},
	{"SMTP_CONNECTIONS", "8", "emails sent at once (SMTP connections kept open)"},
	{"SHUTDOWN_GRACE", "10s", "how long shutdown waits for requests and handlers in flight (1s to 10m)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "text", "text or json"},
	{"ROLE", "all", "all; api (HTTP, GraphQL, relay, notifier; sends no mail or webhooks); worker (mail and webhooks; HTTP only /healthz, /readyz, /metrics); api and worker need AMQP_URL"},
	{"MIGRATE", "auto", "auto: apply pending schema migrations at start (one process at a time); off: refuse to start while any is pending (run 'verifier migrate' first)"},
	{"METRICS_ADDR", "", "listen address of /metrics, /healthz and /readyz on a port of their own (then /metrics leaves HTTP_ADDR); empty: HTTP_ADDR serves them"},
	{"PPROF_ADDR", "", "listen address of Go's profiler (/debug/pprof/, net/http/pprof) on a port of its own, for an operator or make bench; keep it on loopback: profiles show the service's internals; empty: off"},
	{"OTEL_EXPORTER_OTLP_ENDPOINT", "", "OTLP/HTTP collector, e.g. http://otel-collector:4318: traces are exported there (other OTEL_* variables apply); empty: no tracing"},
}

// Bounds of the duration settings. Each minimum is the least value that
// still works as meant; each maximum catches a unit typed wrong (60000s for
// 60s) before it becomes a week.
const (
	// minTokenTTL catches a unit typed wrong (1ns, 1ms). Production wants
	// hours; the browser tests use seconds to see a link expire.
	minTokenTTL = time.Second
	// maxTokenTTL caps TOKEN_TTL: a link that works for days is a link that
	// works for whoever finds an old email.
	maxTokenTTL = 24 * time.Hour
	// minResendCooldown: under a second the cooldown stops any flood.
	minResendCooldown = time.Second
	maxResendCooldown = 24 * time.Hour
	// UNVERIFIED_TTL: under an hour a person reading mail later loses
	// the account; over a year the address is squatted in all but name.
	minUnverifiedTTL = time.Hour
	maxUnverifiedTTL = 365 * 24 * time.Hour
	// CODE_TTL and RECEIPT_TTL: a code or a receipt is for the next
	// minutes, not for days.
	minShortTTL = time.Minute
	maxShortTTL = 24 * time.Hour
	// SESSION_TTL: at most a month.
	maxSessionTTL = 30 * 24 * time.Hour
	// minShutdownGrace: requests in flight need some time to finish.
	minShutdownGrace = time.Second
	// maxShutdownGrace: orchestrators kill a process long before this.
	maxShutdownGrace = 10 * time.Minute
)

// minWebhookSecretBytes is the least key length of WEBHOOK_SECRET: the
// Standard Webhooks specification asks for 24 to 64 random bytes.
const minWebhookSecretBytes = 24

// maxWebhookURLLen is the longest WEBHOOK_URL entry a delivery record
// holds.
const maxWebhookURLLen = 2048

// minAdminTokenLen is the least length of ADMIN_TOKEN: the token is the
// admin API's only lock, so it must be too long to guess (32 characters of
// openssl rand -base64 are 192 bits).
const minAdminTokenLen = 32

// Secret is a setting that is never shown: printed, formatted, logged or
// marshalled it reads xxxxx. Reveal gives the value to what needs it.
type Secret string

const redacted = "xxxxx"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer: never the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer (%#v): never the secret.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer: never the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler: never the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Bounds of the count settings, well above any real need: a larger value is
// a typo, and some would overflow the arithmetic done on them.
const (
	maxPerMinute      = 1_000_000   // CLIENT_RATE_LIMIT, VERIFY_RATE_LIMIT
	maxEmailsPerHour  = 100_000_000 // DOMAIN_EMAIL_LIMIT, GLOBAL_EMAIL_LIMIT
	maxSocketSubs     = 10_000      // WS_MAX_SUBSCRIPTIONS
	maxClientSockets  = 1_000_000   // WS_MAX_SOCKETS
	maxSubscriptions  = 100_000_000 // MAX_SUBSCRIPTIONS
	maxSMTPConns      = 1_000       // SMTP_CONNECTIONS
	maxProxyHops      = 10          // TRUST_PROXY
	maxShownValueRune = 80          // longest value quoted back in an error
)

// Load reads the settings through getenv (os.Getenv in production, a map in
// tests) and reports every invalid one at once, one error per problem
// joined with errors.Join. No password in a URL is ever part of an error:
// URLs are shown redacted, and a URL that does not parse is named by its
// scheme alone.
func Load(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, s := range Settings {
			if s.Name == name {
				return s.Default
			}
		}
		return ""
	}
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	duration := func(name string, min, max time.Duration) time.Duration {
		v := get(name)
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			fail(name, "want a Go duration such as 60s, 15m or 2h, got %s", quote(v))
		case d < min || d > max:
			fail(name, "want a duration from %s to %s, got %s", short(min), short(max), short(d))
		}
		return d
	}
	// The lifetimes of receipts and signIn tokens are whole seconds: a
	// JWT's iat and exp are, and the contract has exp - iat be the
	// setting exactly (and expiresAt the token's exp). 90500ms would sign
	// tokens living 90 s while expiresAt said 90.5 s.
	wholeSeconds := func(name string, min, max time.Duration) time.Duration {
		d := duration(name, min, max)
		if d%time.Second != 0 && d >= min && d <= max {
			fail(name, "want whole seconds (a JWT's iat and exp are), got %s", short(d))
		}
		return d
	}
	count := func(name, what string, min, max int) int {
		v := get(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			fail(name, "want %s from %d to %d, got %s", what, min, max, quote(v))
		}
		return n
	}

	c := Config{
		HTTPAddr:       get("HTTP_ADDR"),
		DatabaseURL:    get("DATABASE_URL"),
		AMQPURL:        get("AMQP_URL"),
		SMTPURL:        get("SMTP_URL"),
		MailFrom:       get("MAIL_FROM"),
		TokenTTL:       duration("TOKEN_TTL", minTokenTTL, maxTokenTTL),
		ResendCooldown: duration("RESEND_COOLDOWN", minResendCooldown, maxResendCooldown),
		ShutdownGrace:  duration("SHUTDOWN_GRACE", minShutdownGrace, maxShutdownGrace),
		UnverifiedTTL:  duration("UNVERIFIED_TTL", minUnverifiedTTL, maxUnverifiedTTL),
		CodeTTL:        duration("CODE_TTL", minShortTTL, maxShortTTL),
		ReceiptTTL:     wholeSeconds("RECEIPT_TTL", minShortTTL, maxShortTTL),
		SessionTTL:     wholeSeconds("SESSION_TTL", minShortTTL, maxSessionTTL),
		SigningKeyFile: get("SIGNING_KEY_FILE"),
		JWTAudience:    get("JWT_AUDIENCE"),
		TemplatesDir:   get("TEMPLATES_DIR"),
		LogLevel:       strings.ToLower(get("LOG_LEVEL")),
		LogFormat:      strings.ToLower(get("LOG_FORMAT")),
		MetricsAddr:    get("METRICS_ADDR"),
		PprofAddr:      get("PPROF_ADDR"),
		OTLPEndpoint:   get("OTEL_EXPORTER_OTLP_ENDPOINT"),
		Role:           strings.ToLower(get("ROLE")),
		Migrate:        strings.ToLower(get("MIGRATE")),
	}
	// PUBLIC_URL's default follows HTTP_ADDR, so that changing the port
	// alone keeps the links in emails pointing at this process; Settings
	// shows the rule, not a value, so get's default is not used.
	if v := strings.TrimSpace(getenv("PUBLIC_URL")); v != "" {
		c.PublicURL = strings.TrimRight(v, "/")
	} else {
		c.PublicURL = localURL(c.HTTPAddr)
	}
	c.ClientLimit = count("CLIENT_RATE_LIMIT", "calls a minute", 0, maxPerMinute)
	c.VerifyLimit = count("VERIFY_RATE_LIMIT", "calls a minute", 0, maxPerMinute)
	c.DomainEmailLimit = count("DOMAIN_EMAIL_LIMIT", "emails an hour", 0, maxEmailsPerHour)
	c.GlobalEmailLimit = count("GLOBAL_EMAIL_LIMIT", "emails an hour", 0, maxEmailsPerHour)
	c.WSMaxSubscriptions = count("WS_MAX_SUBSCRIPTIONS", "subscriptions a socket", 1, maxSocketSubs)
	c.WSMaxSockets = count("WS_MAX_SOCKETS", "websockets a client", 1, maxClientSockets)
	c.MaxSubscriptions = count("MAX_SUBSCRIPTIONS", "subscriptions", 1, maxSubscriptions)
	c.SMTPConnections = count("SMTP_CONNECTIONS", "connections", 1, maxSMTPConns)
	switch v := strings.ToLower(get("TRUST_PROXY")); v {
	case "false":
		c.TrustProxy = 0
	case "true":
		c.TrustProxy = 1
	default:
		c.TrustProxy = count("TRUST_PROXY", "true, false or a number of proxies", 0, maxProxyHops)
	}
	if k := get("TOKEN_SEAL_KEY"); k != "" {
		key, err := seal.ParseKey(k)
		if err != nil {
			// Never echo the value: it is a secret.
			fail("TOKEN_SEAL_KEY", "%v", err)
		}
		c.TokenSealKey = key
	}

	for _, raw := range strings.Split(get("WEBHOOK_URL"), ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		if err := checkWebhookURL(raw); err != nil {
			fail("WEBHOOK_URL", "%v", err)
			continue
		}
		if !slices.Contains(c.WebhookURLs, raw) {
			c.WebhookURLs = append(c.WebhookURLs, raw)
		}
	}
	if v := get("WEBHOOK_SECRET"); v != "" {
		if err := checkWebhookSecret(v); err != nil {
			// Never echo the value: it is a secret.
			fail("WEBHOOK_SECRET", "%v", err)
		}
		c.WebhookSecret = Secret(v)
	} else if len(c.WebhookURLs) > 0 {
		fail("WEBHOOK_SECRET", "required with WEBHOOK_URL: whsec_ followed by base64 of at least %d random bytes (e.g. echo whsec_$(openssl rand -base64 32))", minWebhookSecretBytes)
	}

	if v := get("ADMIN_TOKEN"); v != "" {
		if len(v) < minAdminTokenLen {
			// Never echo the value: it is a secret.
			fail("ADMIN_TOKEN", "want at least %d characters (e.g. openssl rand -base64 32), got %d", minAdminTokenLen, len(v))
		}
		c.AdminToken = Secret(v)
	}

	if err := checkListenAddr(c.HTTPAddr); err != nil {
		fail("HTTP_ADDR", "%v", err)
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddr(c.MetricsAddr); err != nil {
			fail("METRICS_ADDR", "%v", err)
		}
	}
	if c.PprofAddr != "" {
		if err := checkListenAddr(c.PprofAddr); err != nil {
			fail("PPROF_ADDR", "%v", err)
		}
	}
	// Each listener needs a port of its own: the same address twice
	// would fail at start with "address already in use" on a port nothing
	// else holds. Port 0 is a free port each, as tests use it.
	same := func(a, b string) bool {
		_, port, _ := net.SplitHostPort(a)
		return a != "" && a == b && port != "0"
	}
	switch {
	case same(c.MetricsAddr, c.HTTPAddr):
		fail("METRICS_ADDR", "the same address as HTTP_ADDR (%s): give it a port of its own, or leave it empty to serve /metrics on HTTP_ADDR", quote(c.HTTPAddr))
	case same(c.MetricsAddr, c.PprofAddr):
		fail("PPROF_ADDR", "the same address as METRICS_ADDR (%s): give it a port of its own", quote(c.MetricsAddr))
	}
	if same(c.PprofAddr, c.HTTPAddr) {
		fail("PPROF_ADDR", "the same address as HTTP_ADDR (%s): give it a port of its own", quote(c.HTTPAddr))
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			fail("OTEL_EXPORTER_OTLP_ENDPOINT", "want http(s)://host:port of an OTLP/HTTP collector, got %s", redact(c.OTLPEndpoint))
		}
	}
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		fail("DATABASE_URL", "%v", err)
	}
	if c.AMQPURL != "" {
		if err := checkAMQPURL(c.AMQPURL); err != nil {
			fail("AMQP_URL", "%v", err)
		}
	}
	if c.SMTPURL != "" {
		if err := checkSMTPURL(c.SMTPURL); err != nil {
			fail("SMTP_URL", "%v", err)
		}
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		fail("MAIL_FROM", "want an email address such as no-reply@example.com or 'Example <no-reply@example.com>', got %s", quote(c.MailFrom))
	}
	publicURL, err := checkPublicURL(c.PublicURL)
	if err != nil {
		fail("PUBLIC_URL", "%v", err)
	}
	// origins reads a comma-separated list of origins.
	origins := func(name string) []string {
		var out []string
		for _, raw := range strings.Split(get(name), ",") {
			if raw = strings.TrimSpace(raw); raw == "" {
				continue
			}
			o, err := origin(raw)
			if err != nil {
				fail(name, "%v", err)
				continue
			}
			out = append(out, o)
		}
		return out
	}
	c.AllowedOrigins = origins("ALLOWED_ORIGINS")
	if publicURL != nil {
		c.PublicOrigin, _ = origin(publicURL.Scheme + "://" + publicURL.Host)
		c.RedirectOrigins = append(c.RedirectOrigins, c.PublicOrigin)
	}
	for _, o := range origins("REDIRECT_ALLOWLIST") {
		// redirectTo takes http(s) URLs only, so another scheme here could
		// never match: a mistake to say at start, not to ignore. Websocket
		// origins are another matter: a hybrid app's is capacitor://
		// or tauri://.
		if !strings.HasPrefix(o, "https://") && !strings.HasPrefix(o, "http://") {
			fail("REDIRECT_ALLOWLIST", "%s: redirectTo takes http and https URLs only", quote(o))
			continue
		}
		c.RedirectOrigins = append(c.RedirectOrigins, o)
	}
	if f := c.SigningKeyFile; f != "" {
		if strings.ContainsFunc(f, unicode.IsControl) {
			fail("SIGNING_KEY_FILE", "a control character in the path")
		} else if _, err := os.Stat(f); err != nil {
			fail("SIGNING_KEY_FILE", "cannot read %s: %v", quote(f), errors.Unwrap(err))
		}
	}
	if d := c.TemplatesDir; d != "" {
		if strings.ContainsFunc(d, unicode.IsControl) {
			fail("TEMPLATES_DIR", "a control character in the path")
		} else if fi, err := os.Stat(d); err != nil {
			fail("TEMPLATES_DIR", "cannot read %s: %v", quote(d), errors.Unwrap(err))
		} else if !fi.IsDir() {
			fail("TEMPLATES_DIR", "%s is not a folder: want one with a folder per locale (en/verify.txt, de/verify.html, …)", quote(d))
		}
	}
	if strings.ContainsFunc(c.JWTAudience, unicode.IsControl) {
		fail("JWT_AUDIENCE", "a control character in the audience")
	}
	// oneOf checks a setting that takes one of a few words.
	oneOf := func(name, v string, words ...string) {
		if !slices.Contains(words, v) {
			fail(name, "want %s or %s, got %s", strings.Join(words[:len(words)-1], ", "), words[len(words)-1], quote(v))
		}
	}
	oneOf("LOG_LEVEL", c.LogLevel, "debug", "info", "warn", "error")
	oneOf("LOG_FORMAT", c.LogFormat, "text", "json")
	oneOf("ROLE", c.Role, RoleAll, RoleAPI, RoleWorker)
	oneOf("MIGRATE", c.Migrate, "auto", "off")
	if (c.Role == RoleAPI || c.Role == RoleWorker) && c.AMQPURL == "" {
		// The in-process broker joins nothing across processes: an api's
		// events would never reach a worker.
		fail("AMQP_URL", "required with ROLE=%s: the roles share events through RabbitMQ (amqp://user:pass@host:port/vhost)", c.Role)
	}

	// The dev outbox keeps mail on the delivery records in the database, so
	// it works across processes too: a worker keeps the mail, every api
	// lists it at /dev/mail. A worker follows DEV_MAILBOX as one process
	// does; an api sends nothing, so it never refuses to start over
	// SMTP_URL, and only shows /dev/mail when DEV_MAILBOX would keep mail
	// there.
	sends := c.Role != RoleAPI
	c.DevMailbox = strings.ToLower(get("DEV_MAILBOX"))
	switch {
	case c.DevMailbox != "auto" && c.DevMailbox != "true" && c.DevMailbox != "false":
		fail("DEV_MAILBOX", "want auto, true or false, got %s", quote(c.DevMailbox))
	case c.SMTPURL != "":
		// Mail goes out; the dev outbox does not exist.
	case c.DevMailbox == "true":
		c.DevOutbox = true
	case c.DevMailbox == "false":
		if sends {
			fail("SMTP_URL", "required with DEV_MAILBOX=false: set SMTP_URL to smtp://host:port of the mail server")
		}
	case publicURL == nil:
		// PUBLIC_URL is reported already; whether it is loopback is moot.
	case isLoopback(publicURL.Hostname()):
		c.DevOutbox = true
	case !sends:
		// No /dev/mail on a public address; the worker sends the mail.
	default:
		// The dev outbox lists every verification link at /dev/mail:
		// on a public address anyone could verify any address.
		fail("SMTP_URL", "empty, and PUBLIC_URL %s is not a loopback address, so the dev outbox at /dev/mail would show every verification link to anyone: set SMTP_URL to send mail, or DEV_MAILBOX=true to keep the dev outbox on purpose", redact(c.PublicURL))
	}
	return c, errors.Join(errs...)
}

// Warnings are what is valid in c but probably not meant; the service
// starts and logs each. They are not errors, because tests and demos set
// such values on purpose (a link that expires in seconds).
func (c Config) Warnings() []string {
	var w []string
	if c.ResendCooldown >= c.TokenTTL {
		w = append(w, fmt.Sprintf("RESEND_COOLDOWN (%s) is not shorter than TOKEN_TTL (%s): an email to an address within its cooldown waits for the cooldown's end, and its link may have expired by then", short(c.ResendCooldown), short(c.TokenTTL)))
	}
	if c.ResendCooldown >= c.CodeTTL {
		w = append(w, fmt.Sprintf("RESEND_COOLDOWN (%s) is not shorter than CODE_TTL (%s): an email to an address within its cooldown waits for the cooldown's end, and its one-time code may have expired by then", short(c.ResendCooldown), short(c.CodeTTL)))
	}
	return w
}

// defaultPublicURL is PUBLIC_URL when it is unset and HTTP_ADDR's port is
// not known before the listener binds it (port 0) or HTTP_ADDR is invalid
// (reported on its own).
const defaultPublicURL = "http://localhost:8080"

// localURL is PUBLIC_URL's default for a listen address: http://localhost
// with the address's port. The host is localhost whatever HTTP_ADDR's host
// (127.0.0.1, [::1], 0.0.0.0, none): each of them answers on localhost, so
// the links work on this machine, and a loopback PUBLIC_URL keeps the dev
// mailbox's rules as on defaults. A process bound to one non-loopback
// address only needs PUBLIC_URL.
func localURL(httpAddr string) string {
	_, p, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return defaultPublicURL
	}
	port, err := portNumber(p, 1)
	if err != nil {
		return defaultPublicURL
	}
	if port == 80 {
		return "http://localhost" // as browsers write the origin
	}
	return "http://localhost:" + strconv.Itoa(port)
}

// isLoopback reports whether host is localhost, in 127.0.0.0/8 or ::1: the
// addresses only this machine reaches.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkListenAddr wants host:port with a numeric port; the host may be
// empty (every interface), an IP or a name.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port such as :8080 or 127.0.0.1:8080, got %s", quote(addr))
	}
	if _, err := portNumber(port, 0); err != nil {
		return err
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("want an IP address or a host name before the port, got %s", quote(addr))
	}
	return nil
}

// portNumber parses a port from min to 65535.
func portNumber(p string, min int) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < min || n > 65535 || strings.HasPrefix(p, "+") {
		return 0, fmt.Errorf("want a port from %d to 65535, got %s", min, quote(p))
	}
	return n, nil
}

// validHost accepts an IP address (an IPv6 zone included) or a DNS name.
func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if r != '-' && r != '_' && (r > unicode.MaxASCII || !unicode.IsLetter(r) && !unicode.IsDigit(r)) {
				return false
			}
		}
	}
	return true
}

// parseURL parses a URL setting without ever putting it in an error: net/url
// quotes the whole input, password included, in its errors.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("cannot be parsed as a URL (scheme %s; a reserved character such as @ : / ? # in the user name or password must be percent-encoded)", scheme(raw))
	}
	if strings.ContainsFunc(raw, unicode.IsControl) {
		return nil, fmt.Errorf("a control character in the URL (scheme %s)", scheme(raw))
	}
	return u, nil
}

// urlShape reports the parts of u that no URL setting takes.
func urlShape(u *url.URL, raw string) error {
	switch {
	case u.Opaque != "":
		return fmt.Errorf("want scheme://host…, got %s", redact(raw))
	case u.Hostname() == "":
		return fmt.Errorf("no host in %s", redact(raw))
	case !validHost(u.Hostname()):
		return fmt.Errorf("not a host name or IP address in %s", redact(raw))
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("a fragment (#…) in %s", redact(raw))
	}
	if p := u.Port(); p != "" {
		if _, err := portNumber(p, 1); err != nil {
			return fmt.Errorf("%v in %s", err, redact(raw))
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("an empty port in %s", redact(raw))
	}
	return nil
}

func checkDatabaseURL(raw string) error {
	switch {
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(raw, "sqlite:")
		switch {
		case path == "":
			return errors.New("want sqlite:PATH such as sqlite:data/verifier.db, got an empty path")
		case path == ":memory:" || strings.HasPrefix(path, "file:"):
			return fmt.Errorf("want sqlite:PATH of a file, got %s: every connection of the pool would see a database of its own, or the options would clash", quote(path))
		case strings.HasPrefix(path, "//"):
			return fmt.Errorf("want sqlite:PATH such as sqlite:data/verifier.db or sqlite:/var/lib/verifier/verifier.db, got %s", quote(path))
		case strings.ContainsFunc(path, unicode.IsControl):
			return errors.New("a control character in the SQLite path")
		}
		return nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := parseURL(raw)
		if err != nil {
			return err
		}
		if u.Fragment != "" || strings.Contains(raw, "#") {
			return fmt.Errorf("a fragment (#…) in %s", redact(raw))
		}
		// pgx reads every option (sslmode, timeouts, hosts) as it will at
		// connect; it redacts the password itself, and scrub makes sure.
		if _, err := pgx.ParseConfig(raw); err != nil {
			// pgx's message holds the URL, redacted.
			return errors.New(scrub(err.Error(), u))
		}
		return nil
	default:
		return fmt.Errorf("want sqlite:PATH or postgres://user:pass@host:port/db, got %s", gotScheme(raw))
	}
}

func checkAMQPURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("want amqp://user:pass@host:port/vhost or amqps://…, got %s", gotScheme(raw))
	}
	if err := urlShape(u, raw); err != nil {
		return err
	}
	// amqp091-go's own parser, as Dial will use it. Its errors can quote
	// the URL; scrub removes the password.
	if _, err := amqp.ParseURI(raw); err != nil {
		return fmt.Errorf("%s: %s", redact(raw), scrub(err.Error(), u))
	}
	return nil
}

func checkSMTPURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return fmt.Errorf("want smtp://[user:pass@]host:port or smtps://…, got %s", gotScheme(raw))
	}
	if err := urlShape(u, raw); err != nil {
		return err
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
		return fmt.Errorf("want smtp://[user:pass@]host:port with no path or query, got %s", redact(raw))
	}
	return nil
}

// checkPublicURL wants an absolute http(s) URL that links can be appended
// to: no query or fragment, which would swallow the path after them, and no
// user info, which would put a password in every email.
func checkPublicURL(raw string) (*url.URL, error) {
	u, err := httpURL(raw, "https://verify.example.com")
	if err != nil {
		return nil, err
	}
	switch {
	case u.User != nil:
		return nil, fmt.Errorf("a user name or password in %s: it would be in every email", redact(raw))
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("a query (?…) in %s: links are appended to it", redact(raw))
	}
	return u, nil
}

// httpURL parses an absolute http(s) URL setting; example shows one.
func httpURL(raw, example string) (*url.URL, error) {
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("want an absolute http(s) URL such as %s, got %s", example, redact(raw))
	}
	if err := urlShape(u, raw); err != nil {
		return nil, err
	}
	return u, nil
}

// checkWebhookURL wants an absolute http(s) URL without user info (the
// endpoint's URL appears in logs and records; receivers authenticate us by
// the signature) or fragment.
func checkWebhookURL(raw string) error {
	// The delivery records hold that much (ent's WebhookDelivery
	// endpoint); a longer one would fail every event's record, for every
	// endpoint, since one event's rows are written together.
	if len(raw) > maxWebhookURLLen {
		return fmt.Errorf("want a URL of at most %d characters, got %d", maxWebhookURLLen, len(raw))
	}
	err := webhookURLShape(raw)
	// The query may hold the receiver's key, as the dispatcher's logs
	// assume (they show the endpoint without it).
	if q, perr := url.Parse(raw); err != nil && perr == nil && q.RawQuery != "" {
		return errors.New(strings.ReplaceAll(err.Error(), q.RawQuery, "xxxxx"))
	}
	return err
}

// webhookURLShape is checkWebhookURL's check, its errors quoting raw.
func webhookURLShape(raw string) error {
	u, err := httpURL(raw, "https://hooks.example.com/verifier")
	if err != nil {
		return err
	}
	if u.User != nil {
		return fmt.Errorf("a user name or password in %s: receivers check the signature instead, and the URL is shown in logs", redact(raw))
	}
	return nil
}

// checkWebhookSecret wants whsec_ and standard base64 of enough bytes.
func checkWebhookSecret(v string) error {
	b64, ok := strings.CutPrefix(v, "whsec_")
	if !ok {
		return errors.New("want whsec_ followed by base64 of at least 24 random bytes (e.g. echo whsec_$(openssl rand -base64 32))")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return errors.New("the part after whsec_ is not standard base64")
	}
	if len(key) < minWebhookSecretBytes {
		return fmt.Errorf("want at least %d random bytes after whsec_, got %d", minWebhookSecretBytes, len(key))
	}
	return nil
}

// origin checks one ALLOWED_ORIGINS entry and returns it as browsers send
// it in Origin: scheme and host in lower case, no default port.
func origin(raw string) (string, error) {
	bad := func() (string, error) {
		return "", fmt.Errorf("%s is not an origin such as https://app.example.com or http://localhost:5173", redact(raw))
	}
	u, err := parseURL(strings.TrimRight(raw, "/"))
	if err != nil || u.Scheme == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.ForceQuery {
		return bad()
	}
	if urlShape(u, raw) != nil {
		return bad()
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host, nil
}

// redact shows a URL setting with its password replaced by xxxxx, or only
// its scheme when it does not parse, or when an @ stands where net/url sees
// no user info: a mistyped scheme puts user:password@ into the path or the
// fragment, which Redacted leaves as it is.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || strings.Contains(u.Opaque+u.Path+u.RawQuery+u.Fragment, "@") {
		return "a " + scheme(raw) + " URL"
	}
	return quote(u.Redacted())
}

// scrub removes u's password, as typed and decoded, from a library's error
// text.
func scrub(msg string, u *url.URL) string {
	if u.User == nil {
		return msg
	}
	p, ok := u.User.Password()
	if !ok || p == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, p, "xxxxx")
	if _, rawPass, ok := strings.Cut(u.User.String(), ":"); ok && rawPass != "" {
		msg = strings.ReplaceAll(msg, rawPass, "xxxxx")
	}
	return msg
}

// scheme names a URL's scheme without echoing the rest, which may hold a
// password.
func scheme(raw string) string {
	if i := strings.Index(raw, ":"); i > 0 && !strings.ContainsAny(raw[:i], "/@?# ") {
		return quote(raw[:i])
	}
	return "schemeless"
}

// gotScheme says what stands where a URL setting's scheme should: a
// scheme, a host:port typed without one (SMTP_URL=mail.example.com:25,
// which net/url reads as the scheme "mail.example.com"), or nothing.
func gotScheme(raw string) string {
	i := strings.Index(raw, ":")
	if i <= 0 || strings.ContainsAny(raw[:i], "/@?# ") {
		return "no scheme"
	}
	if port := raw[i+1:]; port != "" && strings.Trim(port, "0123456789") == "" {
		return "host:port without a scheme"
	}
	return "scheme " + quote(raw[:i])
}

// quote shows a non-secret value back in an error, cut short if long.
func quote(v string) string {
	if r := []rune(v); len(r) > maxShownValueRune {
		return strconv.Quote(string(r[:maxShownValueRune])) + "…"
	}
	return strconv.Quote(v)
}

// short formats a duration without the zero units time.Duration prints
// (24h rather than 24h0m0s).
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
