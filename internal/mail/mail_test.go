package mail

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every email renders in text and HTML and says what happened and what to
// do; the verification email shows the code prominently and the link on a
// line of its own (text) and as a button (HTML).
func TestTemplates(t *testing.T) {
	t.Parallel()
	expires := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	link := VerifyLink("https://verify.example", "tok_en-123")
	verification := func(d VerificationData) func() (Message, error) {
		return func() (Message, error) { return BuiltinTemplates().Verification("id", "a@example.com", d) }
	}
	tests := []struct {
		name        string
		render      func() (Message, error)
		subject     string
		text, html  []string
		notText     []string
		linkOwnLine bool
	}{
		{
			name:    "verification with code",
			render:  verification(VerificationData{Link: link, Expires: expires, Code: "042917", CodeExpires: expires.Add(-23 * time.Hour)}),
			subject: "Verify your email address",
			text: []string{"Thanks for signing up", "Your code: 042917", "works until Tue, 3 Mar 2026 06:06 UTC",
				"The link works until Wed, 4 Mar 2026 05:06 UTC", "If this wasn't you, ignore this email: nothing happens"},
			html:        []string{`>042917<`, `font-size: 32px`, `href="https://verify.example/verify-email?token=tok_en-123"`, "Verify my email", "If this wasn't you"},
			linkOwnLine: true,
		},
		{
			name:        "resend without code (its tries are spent)",
			render:      verification(VerificationData{Link: link, Expires: expires, Resend: true}),
			subject:     "Verify your email address",
			text:        []string{"Here is a new email", "The link works until"},
			notText:     []string{"Your code"},
			html:        []string{"Verify my email"},
			linkOwnLine: true,
		},
		{
			name:        "new address of an account",
			render:      verification(VerificationData{Link: link, Expires: expires, Code: "123456", CodeExpires: expires, ChangeEmail: true}),
			subject:     "Verify your new email address",
			text:        []string{"asked to use this address", "Your code: 123456", "No account moves to this address without the confirmation"},
			html:        []string{">123456<", "No account moves to this address"},
			linkOwnLine: true,
		},
		{
			name: "someone tried to sign up",
			render: func() (Message, error) {
				return BuiltinTemplates().AlreadyRegistered("id", "a@example.com", "en", false)
			},
			subject: "Someone tried to use your email address",
			text:    []string{"tried to sign up with this email address", "sign in instead", "If this wasn't you, ignore this email: nothing happens"},
			html:    []string{"tried to sign up with this email address"},
			notText: []string{"token="},
		},
		{
			name:    "someone tried to move an account here",
			render:  func() (Message, error) { return BuiltinTemplates().AlreadyRegistered("id", "a@example.com", "", true) },
			subject: "Someone tried to use your email address",
			text:    []string{"asked to move that account to this email address", "Nothing was moved", "nothing happens"},
			html:    []string{"asked to move that account to this email address"},
		},
		{
			name: "change of address requested, to the old address",
			render: func() (Message, error) {
				return BuiltinTemplates().EmailChangeNotice("id", "old@example.com", "fr", "n…@example.com")
			},
			subject: "A change of your email address was requested",
			text:    []string{"change its email address to n…@example.com", "Nothing changes until", "If this wasn't you, ignore this email", "change your password"},
			html:    []string{"<strong>n…@example.com</strong>"},
		},
		{
			name:    "German: de-AT finds de, dates in German",
			render:  verification(VerificationData{Link: link, Expires: expires, Code: "042917", CodeExpires: expires.Add(-23 * time.Hour), Locale: "de-AT"}),
			subject: "Bitte bestätige deine E-Mail-Adresse",
			text: []string{"Hallo,", "Danke für deine Registrierung", "Dein Code: 042917", "Er gilt bis Dienstag, 3. März 2026, 06:06 Uhr (UTC).",
				"Der Link gilt bis Mittwoch, 4. März 2026, 05:06 Uhr (UTC).", "Wenn du das nicht warst, ignoriere diese E-Mail"},
			html:        []string{`<html lang="de">`, ">042917<", "E-Mail-Adresse bestätigen", "Er gilt bis Dienstag, 3. März 2026"},
			notText:     []string{"Verify", "Hello"},
			linkOwnLine: true,
		},
		{
			name:        "German: new address",
			render:      verification(VerificationData{Link: link, Expires: expires, ChangeEmail: true, Locale: "de"}),
			subject:     "Bitte bestätige deine neue E-Mail-Adresse",
			text:        []string{"möchte ab jetzt diese Adresse verwenden", "Ohne die Bestätigung wird kein Konto auf diese Adresse umgestellt"},
			notText:     []string{"Dein Code"},
			html:        []string{"E-Mail-Adresse bestätigen"},
			linkOwnLine: true,
		},
		{
			name: "German: someone tried to sign up",
			render: func() (Message, error) {
				return BuiltinTemplates().AlreadyRegistered("id", "a@example.com", "de-DE", false)
			},
			subject: "Jemand wollte deine E-Mail-Adresse verwenden",
			text:    []string{"vielleicht du, wollte sich mit dieser E-Mail-Adresse registrieren", "melde dich stattdessen an"},
			html:    []string{"vielleicht du"},
		},
		{
			name: "German: change of address requested",
			render: func() (Message, error) {
				return BuiltinTemplates().EmailChangeNotice("id", "old@example.com", "de", "n…@example.com")
			},
			subject: "Eine Änderung deiner E-Mail-Adresse wurde angefragt",
			text:    []string{"E-Mail-Adresse in n…@example.com ändern", "ändere dein Passwort"},
			html:    []string{"<strong>n…@example.com</strong>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := tt.render()
			require.NoError(t, err)
			require.Equal(t, tt.subject, m.Subject)
			require.True(t, strings.HasPrefix(m.HTML, "<!doctype html>"))
			for _, s := range tt.text {
				require.Contains(t, m.Text, s)
			}
			for _, s := range tt.notText {
				require.NotContains(t, m.Text, s)
			}
			for _, s := range tt.html {
				require.Contains(t, m.HTML, s)
			}
			if tt.linkOwnLine {
				require.Contains(t, "\n"+m.Text+"\n", "\n"+link+"\n", "the link on a line of its own")
			}
		})
	}
}
