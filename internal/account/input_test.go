package account

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/apperr"
)

// Well-formed tags are never refused (unknown ones fall back to
// English); malformed or oversized ones are BAD_USER_INPUT.
func TestNormalizeLocale(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", "en"},
		{"en", "en"},
		{"EN-us", "en-US"},
		{"de-ch", "de-CH"},
		{"zh-hant-tw", "zh-Hant-TW"},
		{"pt-BR", "pt-BR"},        // no templates: the mailer's closest, English
		{"zz", "en"},              // well-formed, no such language
		{"xx-YY", "en"},           // the same, with a region
		{"zz-AT", "en"},           // not German: a language unknown is English
		{"und", "en"},             // no language named
		{"x-private", "en"},       // private use only
		{"de-AT-foobar", "de-AT"}, // an unknown variant dropped
		{"de-Abcd", "de"},         // an unknown script dropped
		{"not a tag!", ""},
		{"x", ""},
		{"en--US", ""},
		{"123", ""},
		{"en-US-" + string(make([]byte, 40)), ""},
		{"en-" + strings.Repeat("abcdefgh-", 4), ""}, // too long
	} {
		got, err := NormalizeLocale(tt.in)
		if tt.want == "" {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
			continue
		}
		require.NoError(t, err, "%q", tt.in)
		require.Equal(t, tt.want, got, "%q", tt.in)
	}
}

func TestCheckRedirect(t *testing.T) {
	t.Parallel()
	origins := []string{"https://verify.example", "http://localhost:5173"}
	for in, ok := range map[string]bool{
		"https://verify.example/done":          true,
		"https://VERIFY.example:443/done?x=1":  true,
		"http://localhost:5173":                true,
		"http://verify.example/done":           false,
		"https://verify.example.evil/":         false,
		"https://u@verify.example/":            false,
		"https://verify.example/#frag":         false,
		"javascript://verify.example/%0aalert": false,
		"/relative":                            false,
		"":                                     false,
		"https://verify.example/\x00":          false,
	} {
		_, err := CheckRedirect(in, origins)
		if ok {
			require.NoError(t, err, "%q", in)
		} else {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", in)
		}
	}
}

// TestCheckRedirectFragmentSaysWhy: a redirectTo on an allowed origin
// that has a fragment is refused for the fragment (the receipt goes
// there), and says so, rather than blaming its origin.
func TestCheckRedirectFragmentSaysWhy(t *testing.T) {
	t.Parallel()
	origins := []string{"https://verify.example"}
	for _, in := range []string{"https://verify.example/done#step2", "https://verify.example/#"} {
		_, err := CheckRedirect(in, origins)
		require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", in)
		require.Contains(t, err.Error(), "fragment", "%q", in)
		require.NotContains(t, err.Error(), "origin", "%q", in)
	}
	_, err := CheckRedirect("https://evil.example/#x", origins)
	require.Contains(t, err.Error(), "allowed origin")
}

// TestCheckRedirectSaysWhy: a refused redirectTo says what to change, to
// the developer of the app that sent it: the origin and the setting that
// allows one, or the URL's shape. The web app tells the two apart from
// other errors by "redirect" in the message.
func TestCheckRedirectSaysWhy(t *testing.T) {
	t.Parallel()
	origins := []string{"https://verify.example", "http://localhost:5173"}
	tests := []struct {
		in   string
		want []string
	}{
		{"http://localhost:3000/welcome", []string{"redirectTo is not on an allowed origin: http://localhost:3000 is neither PUBLIC_URL's origin nor in the service's REDIRECT_ALLOWLIST"}},
		{"HTTPS://Evil.Example:443/x", []string{"https://evil.example is neither"}},
		{"/welcome", []string{"redirectTo must be an absolute http(s) URL"}},
		{"https://u@verify.example/", []string{"redirectTo must be an absolute http(s) URL, without user info"}},
	}
	for _, tt := range tests {
		_, err := CheckRedirect(tt.in, origins)
		require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", tt.in)
		for _, w := range tt.want {
			require.Contains(t, err.Error(), w, "%q", tt.in)
		}
		require.NotContains(t, err.Error(), "localhost:5173", "the allowed origins stay ours")
	}
}
