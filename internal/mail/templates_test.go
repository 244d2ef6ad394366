package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every email of every shipped locale renders a subject, a text and an
// HTML part; a verification email carries the code in both and the link on
// a line of its own in the text; values are escaped in the HTML.
func TestEveryLocaleRendersEveryEmail(t *testing.T) {
	t.Parallel()
	tpl := BuiltinTemplates()
	require.Equal(t, []string{"en", "de"}, tpl.Locales())
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	link := VerifyLink("https://verify.example", `a"><script>alert(1)</script>`)
	for _, locale := range tpl.Locales() {
		emails := map[string]func() (Message, error){
			"verification": func() (Message, error) {
				return tpl.Verification("id", "a@example.com", VerificationData{Link: link, Code: "042917", Expires: at, CodeExpires: at, Locale: locale})
			},
			"resend without code": func() (Message, error) {
				return tpl.Verification("id", "a@example.com", VerificationData{Link: link, Expires: at, Resend: true, Locale: locale})
			},
			"new address": func() (Message, error) {
				return tpl.Verification("id", "a@example.com", VerificationData{Link: link, Code: "042917", Expires: at, CodeExpires: at, ChangeEmail: true, Locale: locale})
			},
			"already registered":         func() (Message, error) { return tpl.AlreadyRegistered("id", "a@example.com", locale, false) },
			"already registered, change": func() (Message, error) { return tpl.AlreadyRegistered("id", "a@example.com", locale, true) },
			"change notice": func() (Message, error) {
				return tpl.EmailChangeNotice("id", "a@example.com", locale, `<script>@example.com`)
			},
		}
		for name, render := range emails {
			t.Run(locale+"/"+name, func(t *testing.T) {
				t.Parallel()
				m, err := render()
				require.NoError(t, err)
				require.NotEmpty(t, m.Subject)
				require.NotContains(t, m.Subject, "\n")
				require.True(t, strings.HasPrefix(m.HTML, "<!doctype html>"))
				require.Contains(t, m.HTML, `<html lang="`+locale+`">`)
				require.True(t, strings.HasPrefix(m.Text, "H"), "no blank line on top: %q", m.Text[:min(len(m.Text), 20)])
				require.NotContains(t, m.HTML, "<script>", "values are escaped in HTML")
				if strings.Contains(name, "change notice") {
					require.Contains(t, m.Text, "<script>@example.com", "the text part is plain text")
				}
				if strings.HasPrefix(name, "already") || strings.HasPrefix(name, "change") {
					return
				}
				require.Contains(t, "\n"+m.Text+"\n", "\n"+link+"\n", "the link on a line of its own")
				if name != "resend without code" {
					require.Contains(t, m.Text, "042917")
					require.Contains(t, m.HTML, ">042917<")
				}
				if locale == "en" {
					require.Contains(t, m.Subject, "Verify")
				}
			})
		}
	}
}

// A locale finds the closest language with templates; anything else,
// malformed tags too, gets English.
func TestLocaleMatching(t *testing.T) {
	t.Parallel()
	for locale, want := range map[string]string{
		"": "Verify your email address", "en": "Verify your email address", "en-GB": "Verify your email address",
		"fr": "Verify your email address", "zh-Hant-TW": "Verify your email address", "!!": "Verify your email address",
		"de": "Bitte bestätige deine E-Mail-Adresse", "de-AT": "Bitte bestätige deine E-Mail-Adresse",
		"de-CH": "Bitte bestätige deine E-Mail-Adresse", "gsw": "Bitte bestätige deine E-Mail-Adresse",
	} {
		m, err := BuiltinTemplates().Verification("id", "a@example.com", VerificationData{Link: "https://v.example/x", Locale: locale})
		require.NoError(t, err)
		require.Equal(t, want, m.Subject, "locale %q", locale)
	}
}

// writeTree makes a folder of files, path → content.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

// An operator's folder replaces templates per locale and per file; a file
// it lacks is the built-in one of the closest language, and a new locale
// becomes available.
func TestLoadTemplatesOverrides(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"de/verify.txt": `{{define "subject"}}Bestätige deine Adresse bei Beispiel{{end}}
Moin!
{{.Link}}
Bis {{.Expires}}{{if .Code}}, Code {{.Code}} bis {{.CodeExpiresAt.Format "02.01.2006"}}{{end}}.
`,
		"fr/exists.txt":  `{{define "subject"}}Quelqu'un a essayé d'utiliser votre adresse{{end}}Bonjour,{{if .ChangeEmail}} changement{{end}}`,
		"fr/exists.html": `<!doctype html><html lang="fr"><p>Bonjour</p></html>`,
		".DS_Store":      "ignored",
	})
	tpl, err := LoadTemplates(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"en", "de", "fr"}, tpl.Locales())
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)

	m, err := tpl.Verification("id", "a@example.com", VerificationData{Link: "https://v.example/l", Code: "123456", Expires: at, CodeExpires: at, Locale: "de-AT"})
	require.NoError(t, err)
	require.Equal(t, "Bestätige deine Adresse bei Beispiel", m.Subject)
	require.Equal(t, "Moin!\nhttps://v.example/l\nBis Mittwoch, 4. März 2026, 05:06 Uhr (UTC), Code 123456 bis 04.03.2026.\n", m.Text)
	require.Contains(t, m.HTML, "Dein Code:", "verify.html is still the built-in German one")

	m, err = tpl.AlreadyRegistered("id", "a@example.com", "fr-CA", true)
	require.NoError(t, err)
	require.Equal(t, "Quelqu'un a essayé d'utiliser votre adresse", m.Subject)
	require.Equal(t, "Bonjour, changement", m.Text)
	m, err = tpl.Verification("id", "a@example.com", VerificationData{Link: "https://v.example/l", Expires: at, Locale: "fr"})
	require.NoError(t, err)
	require.Equal(t, "Verify your email address", m.Subject, "French has no verify templates: English ones")

	m, err = tpl.Verification("id", "a@example.com", VerificationData{Link: "https://v.example/l", Expires: at, Locale: "en"})
	require.NoError(t, err)
	require.Equal(t, "Verify your email address", m.Subject, "English untouched")
}

// A folder with a mistake in it is refused at load, by a message that
// names the file (and its line, where the mistake has one).
func TestLoadTemplatesRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"parse error", map[string]string{"de/verify.txt": "{{define \"subject\"}}x{{end}}\nHallo\n{{if .Code}}{{end}}{{end}}\n{{.Link}}\n"},
			[]string{"de/verify.txt:3", "unexpected {{end}}"}},
		{"unknown field", map[string]string{"de/exists.html": "<!doctype html>\n<p>\n{{.Emial}}</p>"},
			[]string{"de/exists.html:3", "Emial", "the exists templates get: ChangeEmail"}},
		{"unknown field in a branch the first sample skips", map[string]string{"en/verify.txt": "{{define \"subject\"}}Verify{{end}}\n{{.Link}}\n{{if .Resend}}{{.ResendCount}}{{end}}"},
			[]string{"en/verify.txt:3", "ResendCount"}},
		{"unknown function", map[string]string{"de/change.txt": "{{define \"subject\"}}x{{end}}\n{{upper .NewEmail}}"},
			[]string{"de/change.txt:2", `"upper" not defined`}},
		{"unknown file name", map[string]string{"de/verfy.txt": "x"}, []string{"de/verfy.txt", "unknown template"}},
		{"unknown extension", map[string]string{"de/verify.htm": "x"}, []string{"de/verify.htm", "unknown template"}},
		{"file outside a locale folder", map[string]string{"verify.txt": "x"}, []string{"verify.txt", "not a folder"}},
		{"folder that is no locale", map[string]string{"de_DE!/verify.txt": "x"}, []string{"de_DE!", "BCP 47"}},
		{"two folders for one locale", map[string]string{"de/exists.html": "<p>x</p>", "DE/exists.html": "<p>x</p>"}, []string{"a second folder for locale de"}},
		{"no subject", map[string]string{"de/change.txt": "Hallo {{.NewEmail}}"}, []string{"de/change.txt", "no subject"}},
		{"link not on a line of its own", map[string]string{"de/verify.txt": "{{define \"subject\"}}x{{end}}\nLink: {{.Link}}"},
			[]string{"de/verify.txt", "line of its own"}},
		{"no link in the HTML", map[string]string{"de/verify.html": "<p>Hallo</p>"}, []string{"de/verify.html", "no {{.Link}}"}},
		{"English subject without Verify", map[string]string{"en/verify.txt": "{{define \"subject\"}}Confirm{{end}}\n{{.Link}}"},
			[]string{"en/verify.txt", `"Verify"`}},
		{"English variant's subject without Verify", map[string]string{"en-GB/verify.txt": "{{define \"subject\"}}Confirm{{end}}\n{{.Link}}"},
			[]string{"en-GB/verify.txt", `"Verify"`}},
		{"empty HTML", map[string]string{"de/exists.html": "  "}, []string{"de/exists.html", "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, tt.files)
			_, err := LoadTemplates(dir)
			require.Error(t, err)
			require.Contains(t, err.Error(), dir, "names the file by its path")
			for _, s := range tt.want {
				require.Contains(t, err.Error(), s)
			}
		})
	}
	_, err := LoadTemplates(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "no such file or directory")
}
