// Package config reads the service's settings from the environment, once, at
// start. Every setting is documented in the README and in the public contract.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/verifier/verifier/internal/seal"
)

// Config is every setting the service reads. server.go builds it once and
// hands the parts each component needs.
type Config struct {
	HTTPAddr       string        // HTTP_ADDR
	DatabaseURL    string        // DATABASE_URL
	AMQPURL        string        // AMQP_URL; empty selects the in-process broker
	SMTPURL        string        // SMTP_URL; empty selects the dev outbox
	MailFrom       string        // MAIL_FROM
	PublicURL      string        // PUBLIC_URL, without a trailing slash
	TokenTTL       time.Duration // TOKEN_TTL
	ResendCooldown time.Duration // RESEND_COOLDOWN
	AllowedOrigins []string      // ALLOWED_ORIGINS, comma separated
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
	// TokenSealKey is TOKEN_SEAL_KEY decoded; nil means a key generated
	// once and kept in the database.
	TokenSealKey []byte
	// Websocket and subscription caps: WS_MAX_SUBSCRIPTIONS per socket,
	// WS_MAX_SOCKETS per client address, MAX_SUBSCRIPTIONS in all.
	WSMaxSubscriptions int
	WSMaxSockets       int
	MaxSubscriptions   int
	// SMTPConnections is SMTP_CONNECTIONS: emails sent at once.
	SMTPConnections int
	ShutdownGrace   time.Duration // SHUTDOWN_GRACE
	LogLevel        string        // LOG_LEVEL: debug, info, warn, error
	LogFormat       string        // LOG_FORMAT: text or json
}

// Setting documents one environment variable; the list drives both Load and
// the -help output so the two cannot drift apart.
type Setting struct {
	Name, Default, Help string
}

// Settings lists every variable Load reads, with its default.
var Settings = []Setting{
	{"HTTP_ADDR", ":8080", "listen address"},
	{"DATABASE_URL", "sqlite:data/verifier.db", "sqlite:PATH or postgres://user:pass@host:port/db?sslmode=disable"},
	{"AMQP_URL", "", "empty: in-process broker; amqp://user:pass@host:port/vhost: RabbitMQ"},
	{"SMTP_URL", "", "empty: dev outbox at /dev/mail; smtp://[user:pass@]host:port (smtps:// for implicit TLS)"},
	{"MAIL_FROM", "no-reply@localhost", "sender address"},
	{"PUBLIC_URL", "http://localhost:8080", "base of links in emails"},
	{"TOKEN_TTL", "24h", "verification and watch token lifetime (at most 24h)"},
	{"RESEND_COOLDOWN", "60s", "least time between two emails to one address"},
	{"ALLOWED_ORIGINS", "", "extra origins allowed to open websockets and make credentialed requests, comma separated"},
	{"CLIENT_RATE_LIMIT", "30", "register and resend calls allowed per client a minute (0: no limit); IPv6 clients count per /64"},
	{"VERIFY_RATE_LIMIT", "120", "verifyEmail calls allowed per client a minute (0: no limit)"},
	{"TRUST_PROXY", "0", "how many reverse proxies in front of the service append to X-Forwarded-For (0: use the peer address; true means 1)"},
	{"DOMAIN_EMAIL_LIMIT", "1000", "emails queued per hour to one domain (0: no cap)"},
	{"GLOBAL_EMAIL_LIMIT", "20000", "emails queued per hour in all (0: no cap)"},
	{"DEV_MAILBOX", "auto", "with SMTP_URL empty: auto keeps mail at /dev/mail only when PUBLIC_URL is loopback; true on any PUBLIC_URL; false refuses to start"},
	{"TOKEN_SEAL_KEY", "", "base64 of 32 bytes sealing tokens in the outbox and broker (empty: generated once, kept in the database)"},
	{"WS_MAX_SUBSCRIPTIONS", "20", "subscriptions one websocket may hold open"},
	{"WS_MAX_SOCKETS", "32", "websockets one client address may hold open"},
	{"MAX_SUBSCRIPTIONS", "100000", "subscriptions open in this process in all"},
	{"SMTP_CONNECTIONS", "8", "emails sent at once (SMTP connections kept open)"},
	{"SHUTDOWN_GRACE", "10s", "how long shutdown waits for requests and handlers in flight"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "text", "text or json"},
}

// MaxTokenTTL caps TOKEN_TTL: a link that works for days is a link that
// works for whoever finds an old email.
const MaxTokenTTL = 24 * time.Hour

// Load reads the settings through getenv (os.Getenv in production, a map in
// tests) and reports every invalid one at once.
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
	duration := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive Go duration such as 60s, got %q", name, get(name)))
		}
		return d
	}

	c := Config{
		HTTPAddr:       get("HTTP_ADDR"),
		DatabaseURL:    get("DATABASE_URL"),
		AMQPURL:        get("AMQP_URL"),
		SMTPURL:        get("SMTP_URL"),
		MailFrom:       get("MAIL_FROM"),
		PublicURL:      strings.TrimRight(get("PUBLIC_URL"), "/"),
		TokenTTL:       duration("TOKEN_TTL"),
		ResendCooldown: duration("RESEND_COOLDOWN"),
		ShutdownGrace:  duration("SHUTDOWN_GRACE"),
		LogLevel:       strings.ToLower(get("LOG_LEVEL")),
		LogFormat:      strings.ToLower(get("LOG_FORMAT")),
	}
	count := func(name, what string, min int) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s: want %s (a whole number, at least %d), got %q", name, what, min, get(name)))
		}
		return n
	}
	c.ClientLimit = count("CLIENT_RATE_LIMIT", "calls a minute", 0)
	c.VerifyLimit = count("VERIFY_RATE_LIMIT", "calls a minute", 0)
	c.DomainEmailLimit = count("DOMAIN_EMAIL_LIMIT", "emails an hour", 0)
	c.GlobalEmailLimit = count("GLOBAL_EMAIL_LIMIT", "emails an hour", 0)
	c.WSMaxSubscriptions = count("WS_MAX_SUBSCRIPTIONS", "subscriptions", 1)
	c.WSMaxSockets = count("WS_MAX_SOCKETS", "websockets", 1)
	c.MaxSubscriptions = count("MAX_SUBSCRIPTIONS", "subscriptions", 1)
	c.SMTPConnections = count("SMTP_CONNECTIONS", "connections", 1)
	switch v := strings.ToLower(get("TRUST_PROXY")); v {
	case "false":
		c.TrustProxy = 0
	case "true":
		c.TrustProxy = 1
	default:
		c.TrustProxy = count("TRUST_PROXY", "a number of proxies, or true/false", 0)
	}
	c.DevMailbox = strings.ToLower(get("DEV_MAILBOX"))
	switch c.DevMailbox {
	case "auto", "true", "false":
	default:
		errs = append(errs, fmt.Errorf("DEV_MAILBOX: want auto, true or false, got %q", c.DevMailbox))
	}
	if k := get("TOKEN_SEAL_KEY"); k != "" {
		key, err := seal.ParseKey(k)
		if err != nil {
			// Never echo the value: it is a secret.
			errs = append(errs, fmt.Errorf("TOKEN_SEAL_KEY: %v", err))
		}
		c.TokenSealKey = key
	}
	for _, o := range strings.Split(get("ALLOWED_ORIGINS"), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}

	if c.TokenTTL > MaxTokenTTL {
		errs = append(errs, fmt.Errorf("TOKEN_TTL: at most %s, got %s", MaxTokenTTL, c.TokenTTL))
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("PUBLIC_URL: want an absolute http(s) URL, got %q", c.PublicURL))
	}
	if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, fmt.Errorf("DATABASE_URL: want sqlite:PATH or postgres://…, got a %q URL", scheme(c.DatabaseURL)))
	}
	if c.AMQPURL != "" && !strings.HasPrefix(c.AMQPURL, "amqp://") && !strings.HasPrefix(c.AMQPURL, "amqps://") {
		errs = append(errs, fmt.Errorf("AMQP_URL: want amqp://… or amqps://…, got a %q URL", scheme(c.AMQPURL)))
	}
	if c.SMTPURL != "" && !strings.HasPrefix(c.SMTPURL, "smtp://") && !strings.HasPrefix(c.SMTPURL, "smtps://") {
		errs = append(errs, fmt.Errorf("SMTP_URL: want smtp://… or smtps://…, got a %q URL", scheme(c.SMTPURL)))
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com", o))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("LOG_FORMAT: want text or json, got %q", c.LogFormat))
	}
	return c, errors.Join(errs...)
}

// scheme names a URL's scheme without echoing the rest, which may hold a
// password.
func scheme(raw string) string {
	if i := strings.Index(raw, ":"); i > 0 {
		return raw[:i]
	}
	return "no scheme"
}
