package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	require.NoError(t, err, "a fresh clone starts with no settings at all")
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "sqlite:data/verifier.db", c.DatabaseURL)
	require.Empty(t, c.AMQPURL)
	require.Empty(t, c.SMTPURL)
	require.True(t, c.DevOutbox, "mail kept in the dev outbox on the default loopback PUBLIC_URL")
	require.Equal(t, "no-reply@localhost", c.MailFrom)
	require.Equal(t, "http://localhost:8080", c.PublicURL)
	require.Equal(t, 24*time.Hour, c.TokenTTL)
	require.Equal(t, 60*time.Second, c.ResendCooldown)
	require.Empty(t, c.AllowedOrigins)
	require.Equal(t, 30, c.ClientLimit)
	require.Zero(t, c.TrustProxy)
	require.Equal(t, 168*time.Hour, c.UnverifiedTTL)
	require.Equal(t, 15*time.Minute, c.CodeTTL)
	require.Equal(t, 15*time.Minute, c.ReceiptTTL)
	require.Equal(t, time.Hour, c.SessionTTL)
	require.Empty(t, c.SigningKeyFile)
	require.Empty(t, c.JWTAudience)
	require.Empty(t, c.TemplatesDir)
	require.Equal(t, []string{"http://localhost:8080"}, c.RedirectOrigins, "PUBLIC_URL's origin")
	require.Empty(t, c.Warnings(), "the defaults are what is meant")
}

// A cooldown as long as a link or a code lives is valid (tests and demos
// use one on purpose) but warned about: mail held for it could carry a
// dead link or code.
func TestWarnings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tokenTTL, codeTTL, cooldown string
		want                        []string
	}{
		{"24h", "15m", "60s", nil},
		{"2s", "1m", "1s", nil},
		{"3s", "15m", "60s", []string{"RESEND_COOLDOWN (1m) is not shorter than TOKEN_TTL (3s)"}},
		{"1h", "2h", "1h", []string{"RESEND_COOLDOWN (1h) is not shorter than TOKEN_TTL (1h)"}},
		{"24h", "1m", "1m", []string{"RESEND_COOLDOWN (1m) is not shorter than CODE_TTL (1m)"}},
		{"1h", "15m", "1h", []string{"RESEND_COOLDOWN (1h) is not shorter than TOKEN_TTL (1h)", "RESEND_COOLDOWN (1h) is not shorter than CODE_TTL (15m)"}},
	} {
		t.Run(tt.tokenTTL+"/"+tt.codeTTL+"/"+tt.cooldown, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"TOKEN_TTL": tt.tokenTTL, "CODE_TTL": tt.codeTTL, "RESEND_COOLDOWN": tt.cooldown}))
			require.NoError(t, err, "valid, only warned about")
			w := c.Warnings()
			require.Len(t, w, len(tt.want))
			for i, want := range tt.want {
				require.Contains(t, w[i], want)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"HTTP_ADDR":          "[::1]:0",
		"PUBLIC_URL":         "https://verify.example.com/",
		"SMTP_URL":           "smtps://user:p%40ss@smtp.example.com:465",
		"AMQP_URL":           "amqps://user:pass@rabbit.example.com:5671/prod?heartbeat=10",
		"MAIL_FROM":          "Example <no-reply@example.com>",
		"TOKEN_TTL":          "2h",
		"ALLOWED_ORIGINS":    " https://App.Example.com , http://localhost:5173/ ,https://x.example:443",
		"DATABASE_URL":       "postgres://u:p@localhost:5432/db?sslmode=disable",
		"TRUST_PROXY":        "true",
		"REDIRECT_ALLOWLIST": "https://App.Example.com:443, http://localhost:5173/",
		"CODE_TTL":           "10m",
		"JWT_AUDIENCE":       "my-app",
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"https://verify.example.com", "https://app.example.com", "http://localhost:5173"}, c.RedirectOrigins)
	require.Equal(t, 10*time.Minute, c.CodeTTL)
	require.Equal(t, "my-app", c.JWTAudience)
	require.Equal(t, "https://verify.example.com", c.PublicURL)
	require.Equal(t, 2*time.Hour, c.TokenTTL)
	require.False(t, c.DevOutbox, "SMTP_URL set: mail goes out")
	require.Equal(t, []string{"https://app.example.com", "http://localhost:5173", "https://x.example"}, c.AllowedOrigins,
		"origins as browsers send them: lower case, no default port")
	require.Equal(t, 1, c.TrustProxy)

	for _, db := range []string{"sqlite:/var/lib/verifier/v.db", "sqlite:data/with space?and#odd%chars.db", "postgresql://u@db.internal/verifier"} {
		_, err := Load(env(map[string]string{"DATABASE_URL": db}))
		require.NoError(t, err, db)
	}
}

// TestPublicURLFollowsHTTPAddr: with PUBLIC_URL unset, the links point at
// localhost on HTTP_ADDR's port, so changing HTTP_ADDR alone keeps them
// working on this machine (and the dev mailbox on loopback); PUBLIC_URL
// given always wins.
func TestPublicURLFollowsHTTPAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		httpAddr, publicURL, want string
	}{
		{"", "", "http://localhost:8080"},
		{":8080", "", "http://localhost:8080"},
		{"127.0.0.1:9000", "", "http://localhost:9000"},
		{"localhost:9000", "", "http://localhost:9000"},
		{"[::1]:9000", "", "http://localhost:9000"},
		{"0.0.0.0:9000", "", "http://localhost:9000"},
		{"[::]:9000", "", "http://localhost:9000"},
		{":9000", "", "http://localhost:9000"},
		{":80", "", "http://localhost"},
		{":09000", "", "http://localhost:9000"},
		// Port 0 is chosen when the listener binds, after Load: the
		// contract's default stands (tests give PUBLIC_URL).
		{"127.0.0.1:0", "", "http://localhost:8080"},
		{":9000", "https://verify.example.com/", "https://verify.example.com"},
		{":9000", "http://localhost:8080", "http://localhost:8080"},
		{"127.0.0.1:0", "http://127.0.0.1:41234", "http://127.0.0.1:41234"},
	}
	for _, tt := range tests {
		t.Run(tt.httpAddr+" "+tt.publicURL, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"HTTP_ADDR": tt.httpAddr, "PUBLIC_URL": tt.publicURL, "SMTP_URL": "smtp://127.0.0.1:25"}))
			require.NoError(t, err)
			require.Equal(t, tt.want, c.PublicURL)
			require.Equal(t, []string{tt.want}, c.RedirectOrigins, "PUBLIC_URL's origin")
		})
	}

	t.Run("the dev mailbox stays on", func(t *testing.T) {
		t.Parallel()
		c, err := Load(env(map[string]string{"HTTP_ADDR": "0.0.0.0:9000"}))
		require.NoError(t, err)
		require.True(t, c.DevOutbox, "a derived PUBLIC_URL is loopback")
	})
	t.Run("a bad HTTP_ADDR is reported once", func(t *testing.T) {
		t.Parallel()
		_, err := Load(env(map[string]string{"HTTP_ADDR": ":99999"}))
		require.Len(t, unjoin(err), 1, "HTTP_ADDR alone, not PUBLIC_URL too: %v", err)
		require.ErrorContains(t, err, "HTTP_ADDR:")
	})
}

func TestDevMailbox(t *testing.T) {
	t.Parallel()
	const smtp = "smtp://127.0.0.1:2525"
	tests := []struct {
		devMailbox, smtpURL, publicURL string
		devOutbox                      bool
		err                            string // "" when the process starts
	}{
		{"", "", "http://localhost:8080", true, ""},
		{"auto", "", "http://LOCALHOST:8080/app", true, ""},
		{"auto", "", "http://127.0.0.1:8080", true, ""},
		{"auto", "", "http://127.3.2.1", true, ""},
		{"auto", "", "http://[::1]:8080", true, ""},
		{"auto", "", "https://verify.example.com", false, "set SMTP_URL"},
		{"auto", "", "http://10.0.0.5:8080", false, "DEV_MAILBOX=true"},
		{"auto", "", "http://localhost.example.com", false, "DEV_MAILBOX=true"},
		{"auto", "", "http://[::]:8080", false, "DEV_MAILBOX=true"},
		{"auto", "", "http://0.0.0.0:8080", false, "DEV_MAILBOX=true"},
		{"auto", smtp, "https://verify.example.com", false, ""},
		{"TRUE", "", "https://verify.example.com", true, ""},
		{"true", smtp, "https://verify.example.com", false, ""},
		{"false", "", "http://localhost:8080", false, "required with DEV_MAILBOX=false"},
		{"false", smtp, "http://localhost:8080", false, ""},
		{"yes", "", "http://localhost:8080", false, "DEV_MAILBOX: want auto, true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.devMailbox+" "+tt.smtpURL+" "+tt.publicURL, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"DEV_MAILBOX": tt.devMailbox, "SMTP_URL": tt.smtpURL, "PUBLIC_URL": tt.publicURL}))
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, tt.devOutbox, c.DevOutbox)
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.ErrorContains(t, err, "DEV_MAILBOX", "names the setting to give")
		})
	}
}

// TestRoles: api and worker need RabbitMQ; an api sends nothing, so it
// starts without SMTP_URL on any PUBLIC_URL (and shows /dev/mail only where
// one process would); a worker follows DEV_MAILBOX like one process.
func TestRoles(t *testing.T) {
	t.Parallel()
	const (
		amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
		smtpURL = "smtp://127.0.0.1:2525"
		public  = "https://verify.example.com"
		local   = "http://localhost:8080"
	)
	tests := []struct {
		role, amqpURL, smtpURL, devMailbox, publicURL string
		devOutbox                                     bool
		err                                           string // "" when the process starts
	}{
		{"", "", "", "", local, true, ""},
		{"ALL", "", "", "", local, true, ""},
		{"api", amqpURL, "", "", public, false, ""},
		{"api", amqpURL, "", "false", public, false, ""},
		{"api", amqpURL, "", "", local, true, ""},
		{"api", amqpURL, smtpURL, "", public, false, ""},
		{"api", "", "", "", local, false, "AMQP_URL: required with ROLE=api"},
		{"worker", amqpURL, smtpURL, "", public, false, ""},
		{"worker", amqpURL, "", "", local, true, ""},
		{"worker", amqpURL, "", "", public, false, "set SMTP_URL"},
		{"worker", amqpURL, "", "false", local, false, "required with DEV_MAILBOX=false"},
		{"worker", "", smtpURL, "", public, false, "AMQP_URL: required with ROLE=worker"},
		{"both", amqpURL, "", "", local, false, "ROLE: want all, api or worker"},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.amqpURL+" "+tt.smtpURL+" "+tt.devMailbox+" "+tt.publicURL, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"ROLE": tt.role, "AMQP_URL": tt.amqpURL, "SMTP_URL": tt.smtpURL, "DEV_MAILBOX": tt.devMailbox, "PUBLIC_URL": tt.publicURL}))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.devOutbox, c.DevOutbox)
			require.Contains(t, []string{RoleAll, RoleAPI, RoleWorker}, c.Role)
		})
	}
}

// secret is the password in every bad URL below: no error may show it.
const secret = "s3cr3tPa55"

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key, value, want string
	}{
		{"HTTP_ADDR", "8080", "HTTP_ADDR: want host:port"},
		{"HTTP_ADDR", ":65536", "want a port from 0 to 65535"},
		{"HTTP_ADDR", ":-1", "want a port"},
		{"HTTP_ADDR", ":http", "want a port"},
		{"HTTP_ADDR", "exa mple:80", "want an IP address or a host name"},
		{"METRICS_ADDR", "9090", "METRICS_ADDR: want host:port"},
		{"METRICS_ADDR", ":8080", "METRICS_ADDR: the same address as HTTP_ADDR"},
		{"PPROF_ADDR", ":8080", "PPROF_ADDR: the same address as HTTP_ADDR"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT: want http(s)://host:port"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:" + secret + "@:4318", "xxxxx"},
		{"DATABASE_URL", "mysql://root:" + secret + "@db/x", `got scheme "mysql"`},
		{"DATABASE_URL", "sqlite:", "empty path"},
		{"DATABASE_URL", "sqlite::memory:", "sqlite:PATH of a file"},
		{"DATABASE_URL", "sqlite://data/v.db", "sqlite:PATH such as"},
		{"DATABASE_URL", "postgres://u:" + secret + "@db:99999/x", "DATABASE_URL"},
		{"DATABASE_URL", "postgres://u:" + secret + "@db/x?sslmode=sometimes", "DATABASE_URL"},
		{"DATABASE_URL", "postgres://u:" + secret + "@db/x?connect_timeout=soon", "DATABASE_URL"},
		{"DATABASE_URL", "postgres://u:" + secret + "@db/x#frag", "fragment"},
		{"AMQP_URL", "nats://x", `got scheme "nats"`},
		{"AMQP_URL", "amqp://guest:" + secret + "@host:99999/", "want a port from 1 to 65535"},
		{"AMQP_URL", "amqp://guest:" + secret + "@host:0/", "want a port from 1 to 65535"},
		{"AMQP_URL", "amqp://guest:" + secret + "@host:56x72/", "cannot be parsed"},
		{"AMQP_URL", "amqp://guest:" + secret + "@/vhost", "no host"},
		{"AMQP_URL", "amqp://guest:" + secret + "#@host/", "AMQP_URL"},
		{"AMQP_URL", "amqp://guest:" + secret + "@host/?heartbeat=lots", "heartbeat"},
		{"AMQP_URL", "amqp://guest:" + secret + "@ho st/", "AMQP_URL"},
		{"AMQP_URL", "amqp://guest:" + secret + "@host:5672/%zz", "cannot be parsed"},
		{"SMTP_URL", "http://x", `got scheme "http"`},
		{"SMTP_URL", "smtp://user:" + secret + "@mail.example.com:70000", "want a port from 1 to 65535"},
		{"SMTP_URL", "smtp://user:" + secret + "@:25", "no host"},
		{"SMTP_URL", "smtp://user:" + secret + "@mail.example.com:2x5", "cannot be parsed"},
		{"SMTP_URL", "smtp://user:" + secret + "@mail.example.com/path?x=1", "no path or query"},
		{"SMTP_URL", "mail.example.com:25", "want smtp://[user:pass@]host:port or smtps://…, got host:port without a scheme"},
		{"SMTP_URL", "smtp//user:" + secret + "@mail.example.com", "got no scheme"},
		{"AMQP_URL", "rabbitmq:5672", "got host:port without a scheme"},
		{"DATABASE_URL", "data/verifier.db", "got no scheme"},
		{"MAIL_FROM", "not an address", "MAIL_FROM: want an email address"},
		{"MAIL_FROM", "no-reply", "MAIL_FROM"},
		{"MAIL_FROM", "a@b.example, c@d.example", "MAIL_FROM"},
		{"PUBLIC_URL", "example.com", "PUBLIC_URL"},
		{"PUBLIC_URL", "ftp://example.com", "absolute http(s) URL"},
		{"PUBLIC_URL", "https://verify.example.com/?ref=mail", "a query"},
		{"PUBLIC_URL", "https://verify.example.com/?", "a query"},
		{"PUBLIC_URL", "https://verify.example.com/#top", "a fragment"},
		{"PUBLIC_URL", "https://admin:" + secret + "@verify.example.com", "user name or password"},
		{"PUBLIC_URL", "https://verify.example.com:0", "want a port from 1"},
		{"PUBLIC_URL", "http:verify.example.com", "PUBLIC_URL"},
		{"TOKEN_TTL", "25h", "TOKEN_TTL: want a duration from 1s to 24h, got 25h"},
		{"TOKEN_TTL", "1ns", "TOKEN_TTL: want a duration from 1s"},
		{"TOKEN_TTL", "tomorrow", "TOKEN_TTL: want a Go duration"},
		{"TOKEN_TTL", "60", "TOKEN_TTL: want a Go duration"},
		{"RESEND_COOLDOWN", "1ns", "RESEND_COOLDOWN: want a duration from 1s"},
		{"RESEND_COOLDOWN", "-1s", "RESEND_COOLDOWN"},
		{"SHUTDOWN_GRACE", "0s", "SHUTDOWN_GRACE: want a duration from 1s"},
		{"SHUTDOWN_GRACE", "2h", "to 10m"},
		{"ALLOWED_ORIGINS", "https://a.example/x", "ALLOWED_ORIGINS"},
		{"ALLOWED_ORIGINS", "*", "not an origin"},
		{"ALLOWED_ORIGINS", "app.example.com", "not an origin"},
		{"ALLOWED_ORIGINS", "https://u:" + secret + "@a.example", "not an origin"},
		{"ALLOWED_ORIGINS", "https://a.example?x", "not an origin"},
		{"LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"LOG_FORMAT", "xml", "LOG_FORMAT"},
		{"CLIENT_RATE_LIMIT", "-1", "CLIENT_RATE_LIMIT"},
		{"CLIENT_RATE_LIMIT", "lots", "CLIENT_RATE_LIMIT"},
		{"VERIFY_RATE_LIMIT", "99999999999999999999", "VERIFY_RATE_LIMIT"},
		{"WS_MAX_SUBSCRIPTIONS", "0", "WS_MAX_SUBSCRIPTIONS: want subscriptions a socket from 1 to"},
		{"SMTP_CONNECTIONS", "1e3", "SMTP_CONNECTIONS"},
		{"TRUST_PROXY", "maybe", "TRUST_PROXY"},
		{"TRUST_PROXY", "100", "TRUST_PROXY"},
		{"DEV_MAILBOX", "sometimes", "DEV_MAILBOX"},
		{"TOKEN_SEAL_KEY", secret, "TOKEN_SEAL_KEY"},
		{"UNVERIFIED_TTL", "1m", "UNVERIFIED_TTL: want a duration from 1h"},
		{"CODE_TTL", "2d", "CODE_TTL: want a Go duration"},
		{"CODE_TTL", "25h", "CODE_TTL: want a duration from 1m to 24h"},
		{"RECEIPT_TTL", "1s", "RECEIPT_TTL"},
		{"SESSION_TTL", "1000h", "SESSION_TTL: want a duration from 1m to 720h"},
		{"RECEIPT_TTL", "90500ms", "RECEIPT_TTL: want whole seconds"},
		{"SESSION_TTL", "1h0m0.5s", "SESSION_TTL: want whole seconds"},
		{"SIGNING_KEY_FILE", "/nonexistent/key.pem", "cannot read"},
		{"TEMPLATES_DIR", "/nonexistent/templates", "cannot read"},
		{"TEMPLATES_DIR", "config_test.go", "is not a folder"},
		{"REDIRECT_ALLOWLIST", "https://app.example/path", "REDIRECT_ALLOWLIST"},
		{"REDIRECT_ALLOWLIST", "*", "not an origin"},
		{"REDIRECT_ALLOWLIST", "ftp://files.example", "http and https URLs only"},
		{"WEBHOOK_URL", "ftp://hooks.example.com", "absolute http(s) URL"},
		{"WEBHOOK_URL", "https://u:" + secret + "@hooks.example.com/x", "user name or password"},
		{"WEBHOOK_URL", "https://hooks.example.com:0/x", "want a port from 1"},
		{"WEBHOOK_URL", "https://hooks.example.com:0/x?key=" + secret, "want a port from 1"},
		{"WEBHOOK_URL", "https://u@hooks.example.com/x?key=" + secret, "user name or password"},
		{"WEBHOOK_URL", "https://hooks.example.com/" + strings.Repeat("x", 2048), "at most 2048 characters"},
		{"WEBHOOK_SECRET", secret, "want whsec_"},
		{"WEBHOOK_SECRET", "whsec_" + secret + "!", "not standard base64"},
		{"WEBHOOK_SECRET", "whsec_czNjcjN0UGE1NQ==", "at least 24 random bytes"},
		{"ADMIN_TOKEN", secret, "ADMIN_TOKEN: want at least 32 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			// SMTP_URL set, so that the dev mailbox rules stay out of the way.
			e := map[string]string{"SMTP_URL": "smtp://127.0.0.1:25", tt.key: tt.value}
			_, err := Load(env(e))
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, tt.key+":", "names the setting")
			require.NotContains(t, err.Error(), secret, "a password is never echoed")
			require.Len(t, unjoin(err), 1, "one problem, one error: %v", err)
		})
	}
}

// TestLoadReportsEveryProblem checks that one start lists every bad
// setting, each once, and shows URLs with their password redacted.
func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"MAIL_FROM":       "not an address",
		"PUBLIC_URL":      "https://verify.example.com/?x=1",
		"TOKEN_TTL":       "1ns",
		"RESEND_COOLDOWN": "1ns",
		"AMQP_URL":        "amqp://guest:" + secret + "@rabbit:99999/",
		"SMTP_URL":        "smtp://mailer:" + secret + "@mail:0",
		"HTTP_ADDR":       ":99999",
		"LOG_LEVEL":       "loud",
	}))
	require.Error(t, err)
	errs := unjoin(err)
	var names []string
	for _, e := range errs {
		name, _, _ := strings.Cut(e.Error(), ":")
		names = append(names, name)
	}
	require.ElementsMatch(t, []string{"MAIL_FROM", "PUBLIC_URL", "TOKEN_TTL", "RESEND_COOLDOWN", "AMQP_URL", "SMTP_URL", "HTTP_ADDR", "LOG_LEVEL"}, names, "%v", err)
	require.NotContains(t, err.Error(), secret)
	require.Contains(t, err.Error(), "amqp://guest:xxxxx@rabbit:99999/", "the URL is shown, its password redacted")
}

// TestEverySettingIsValidated gives each documented setting a value no
// setting accepts and expects Load to name it: a setting in the table is
// read and checked. And every variable Load reads is in the table, so
// -help lists it.
func TestEverySettingIsValidated(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range Settings {
		require.False(t, seen[s.Name], "%s listed twice", s.Name)
		seen[s.Name] = true
		require.NotEmpty(t, s.Help, "%s has a help line", s.Name)
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(map[string]string{s.Name: "?? \x01 not valid"}))
			require.ErrorContains(t, err, s.Name+":")
		})
	}
	read := map[string]bool{}
	_, err := Load(func(k string) string { read[k] = true; return "" })
	require.NoError(t, err)
	for name := range read {
		require.True(t, seen[name], "Load reads %s, which config.Settings (and so -help) does not list", name)
	}
	require.Len(t, read, len(Settings), "Load reads every setting in the table")
}

// unjoin lists the errors errors.Join put together.
func unjoin(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		return j.Unwrap()
	}
	return []error{err}
}

func TestWebhooks(t *testing.T) {
	t.Parallel()
	key := "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	c, err := Load(env(map[string]string{
		"WEBHOOK_URL":    " https://a.example/hook , http://127.0.0.1:9000/x?k=1,https://a.example/hook",
		"WEBHOOK_SECRET": key,
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"https://a.example/hook", "http://127.0.0.1:9000/x?k=1"}, c.WebhookURLs)
	require.Equal(t, key, c.WebhookSecret.Reveal())
	for _, shown := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.WebhookSecret.String()} {
		require.NotContains(t, shown, key[6:], "the secret is redacted when printed")
	}
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("config", "secret", c.WebhookSecret, "config", c)
	require.NotContains(t, log.String(), key[6:])
	j, err := json.Marshal(c)
	require.NoError(t, err)
	require.NotContains(t, string(j), key[6:])

	_, err = Load(env(map[string]string{"WEBHOOK_URL": "https://a.example/hook"}))
	require.ErrorContains(t, err, "WEBHOOK_SECRET: required with WEBHOOK_URL")
	c, err = Load(env(nil))
	require.NoError(t, err)
	require.Empty(t, c.WebhookURLs, "no webhooks by default")
}

func TestAdminToken(t *testing.T) {
	t.Parallel()
	tok := "0123456789abcdefghijklmnopqrstuvwxyzABCD"
	c, err := Load(env(map[string]string{"ADMIN_TOKEN": tok}))
	require.NoError(t, err)
	require.Equal(t, tok, c.AdminToken.Reveal())
	for _, shown := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.AdminToken.String()} {
		require.NotContains(t, shown, tok, "the token is redacted when printed")
	}
	c, err = Load(env(nil))
	require.NoError(t, err)
	require.Empty(t, c.AdminToken.Reveal(), "the admin API is off by default")
}

// Port 0 is a free port of its own for each listener (tests start the
// service so): the same address ":0" twice is no clash.
func TestPortZeroIsNoClash(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "PPROF_ADDR": "127.0.0.1:0"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", c.MetricsAddr)
}
