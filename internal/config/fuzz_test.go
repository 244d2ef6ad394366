package config

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzLoad feeds Load random values for the settings that parse something:
// it never panics, a configuration it accepts keeps its promises, and no
// password in a URL setting reaches the error text.
func FuzzLoad(f *testing.F) {
	f.Add(":8080", "sqlite:data/verifier.db", "", "", "no-reply@localhost", "http://localhost:8080", "", "24h", "60s", "30", "auto")
	f.Add("127.0.0.1:0", "postgres://u:pw12345@db:5432/x?sslmode=disable", "amqp://guest:guest123@rabbit:5672/", "smtps://mailer:hunter22@mail.example.com:465",
		"Example <no-reply@example.com>", "https://verify.example.com/app", "https://app.example.com,http://localhost:5173", "2h", "1m", "0", "false")
	f.Add(":99999", "postgres://u:pw12345@db:99999/x", "amqp://guest:guest123@rabbit:99999/", "smtp://mailer:hunter22@mail:0",
		"not an address", "https://verify.example.com/?x", "*", "1ns", "-1s", "lots", "yes")
	f.Add("", "mysql://root:toor1234@db/x", "amqp://guest:gu%zzest@rabbit/", "smtp://u:p@ss@word@mail:25", "", "http:x", "https://u:pw1234@a", "", "", "", "")
	f.Fuzz(func(t *testing.T, httpAddr, databaseURL, amqpURL, smtpURL, mailFrom, publicURL, origins, tokenTTL, cooldown, limit, devMailbox string) {
		e := map[string]string{
			"HTTP_ADDR": httpAddr, "DATABASE_URL": databaseURL, "AMQP_URL": amqpURL, "SMTP_URL": smtpURL,
			"MAIL_FROM": mailFrom, "PUBLIC_URL": publicURL, "ALLOWED_ORIGINS": origins,
			"TOKEN_TTL": tokenTTL, "RESEND_COOLDOWN": cooldown, "CLIENT_RATE_LIMIT": limit, "DEV_MAILBOX": devMailbox,
		}
		c, err := Load(env(e))
		if err == nil {
			if c.DevOutbox != (c.SMTPURL == "") {
				t.Fatalf("DevOutbox %v with SMTP_URL %q", c.DevOutbox, c.SMTPURL)
			}
			if c.TokenTTL < minTokenTTL || c.TokenTTL > maxTokenTTL || c.ResendCooldown < minResendCooldown {
				t.Fatalf("durations out of bounds accepted: %v %v", c.TokenTTL, c.ResendCooldown)
			}
			return
		}
		msg := err.Error()
		for _, key := range []string{"DATABASE_URL", "AMQP_URL", "SMTP_URL", "PUBLIC_URL", "ALLOWED_ORIGINS"} {
			for _, raw := range strings.Split(e[key], ",") {
				start, end, ok := rawPassword(raw)
				if !ok {
					continue
				}
				pass := raw[start:end]
				decoded, _ := url.PathUnescape(pass)
				// The same settings with only this password changed: what
				// the error shows regardless of the password is not a leak
				// (a password that also appears as a host name, say).
				other := map[string]string{}
				for k, v := range e {
					other[k] = v
				}
				other[key] = strings.Replace(e[key], raw, raw[:start]+"REPLACEDPW"+raw[end:], 1)
				_, otherErr := Load(env(other))
				otherMsg := ""
				if otherErr != nil {
					otherMsg = otherErr.Error()
				}
				for _, p := range []string{pass, decoded} {
					if len(p) >= 4 && strings.Contains(msg, p) && !strings.Contains(otherMsg, p) {
						t.Fatalf("%s's password %q is in the error:\n%s", key, p, msg)
					}
				}
			}
		}
	})
}

// rawPassword finds the password in scheme://user:password@host… the way
// net/url splits it, whether or not the URL parses.
func rawPassword(raw string) (start, end int, ok bool) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return 0, 0, false
	}
	authStart := i + 3
	auth := raw[authStart:]
	if j := strings.IndexAny(auth, "/?#"); j >= 0 {
		auth = auth[:j]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.Index(auth[:at], ":")
	if colon < 0 {
		return 0, 0, false
	}
	return authStart + colon + 1, authStart + at, true
}
