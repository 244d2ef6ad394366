package config

import (
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
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "sqlite:data/verifier.db", c.DatabaseURL)
	require.Empty(t, c.AMQPURL)
	require.Empty(t, c.SMTPURL)
	require.Equal(t, "no-reply@localhost", c.MailFrom)
	require.Equal(t, "http://localhost:8080", c.PublicURL)
	require.Equal(t, 24*time.Hour, c.TokenTTL)
	require.Equal(t, 60*time.Second, c.ResendCooldown)
	require.Empty(t, c.AllowedOrigins)
	require.Equal(t, 30, c.ClientLimit)
	require.Zero(t, c.TrustProxy)
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"PUBLIC_URL":      "https://verify.example.com/",
		"TOKEN_TTL":       "2h",
		"ALLOWED_ORIGINS": " https://app.example.com , http://localhost:5173/ ",
		"DATABASE_URL":    "postgres://u:p@localhost:5432/db?sslmode=disable",
	}))
	require.NoError(t, err)
	require.Equal(t, "https://verify.example.com", c.PublicURL)
	require.Equal(t, 2*time.Hour, c.TokenTTL)
	require.Equal(t, []string{"https://app.example.com", "http://localhost:5173"}, c.AllowedOrigins)
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, value, want string
	}{
		{"ttl over a day", "TOKEN_TTL", "25h", "TOKEN_TTL: at most"},
		{"ttl not a duration", "TOKEN_TTL", "tomorrow", "TOKEN_TTL"},
		{"negative cooldown", "RESEND_COOLDOWN", "-1s", "RESEND_COOLDOWN"},
		{"relative public url", "PUBLIC_URL", "example.com", "PUBLIC_URL"},
		{"unknown database", "DATABASE_URL", "mysql://root:secret@db/x", `"mysql"`},
		{"unknown broker", "AMQP_URL", "nats://x", "AMQP_URL"},
		{"unknown mail", "SMTP_URL", "http://x", "SMTP_URL"},
		{"origin with path", "ALLOWED_ORIGINS", "https://a.example/x", "ALLOWED_ORIGINS"},
		{"log level", "LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"negative client limit", "CLIENT_RATE_LIMIT", "-1", "CLIENT_RATE_LIMIT"},
		{"client limit not a number", "CLIENT_RATE_LIMIT", "lots", "CLIENT_RATE_LIMIT"},
		{"trust proxy not a bool", "TRUST_PROXY", "maybe", "TRUST_PROXY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(map[string]string{tt.key: tt.value}))
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "secret", "a password in a URL must not be echoed")
		})
	}
}
