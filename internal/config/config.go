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
	ClientLimit    int           // CLIENT_RATE_LIMIT: register/resend calls per client a minute; 0 is off
	TrustProxy     bool          // TRUST_PROXY: take the client address from X-Forwarded-For
	ShutdownGrace  time.Duration // SHUTDOWN_GRACE
	LogLevel       string        // LOG_LEVEL: debug, info, warn, error
	LogFormat      string        // LOG_FORMAT: text or json
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
	{"CLIENT_RATE_LIMIT", "30", "register and resend calls allowed per client address a minute (0: no limit)"},
	{"TRUST_PROXY", "false", "true behind a reverse proxy: the client address is the last one in X-Forwarded-For"},
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
	if n, err := strconv.Atoi(get("CLIENT_RATE_LIMIT")); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("CLIENT_RATE_LIMIT: want a whole number of calls a minute (0 for no limit), got %q", get("CLIENT_RATE_LIMIT")))
	} else {
		c.ClientLimit = n
	}
	if b, err := strconv.ParseBool(get("TRUST_PROXY")); err != nil {
		errs = append(errs, fmt.Errorf("TRUST_PROXY: want true or false, got %q", get("TRUST_PROXY")))
	} else {
		c.TrustProxy = b
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
