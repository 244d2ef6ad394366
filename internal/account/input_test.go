package account

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/verifier/verifier/internal/apperr"
)

func TestNormalizeLocale(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "en", "en": "en", "EN-us": "en-US", "de-ch": "de-CH", "zh-hant-tw": "zh-Hant-TW", "not a tag!": "", "x": "", "en-US-" + string(make([]byte, 40)): ""} {
		got, err := NormalizeLocale(in)
		if want == "" {
			require.Equal(t, apperr.BadUserInput, apperr.CodeOf(err), "%q", in)
			continue
		}
		require.NoError(t, err, "%q", in)
		require.Equal(t, want, got, "%q", in)
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
