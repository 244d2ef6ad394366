package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// serve starts h and returns a GET of a path that answers the response
// and its body.
func serve(t *testing.T, h http.Handler) func(path string) (*http.Response, string) {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	get := serve(t, Handler())
	for _, path := range []string{"/", "/verify-email?token=abc", "/sign-in"} {
		resp, body := get(path)
		require.Equal(t, 200, resp.StatusCode, path)
		require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		require.Contains(t, body, `<main id="app"`)
	}
	_, body := get("/")
	script := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindStringSubmatch(body)
	require.NotNil(t, script, "index.html loads the built bundle")
	resp, js := get(script[1])
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
	require.Contains(t, js, "graphql-transport-ws")

	resp, _ = get("/nope")
	require.Equal(t, 404, resp.StatusCode)
}

func TestPlayground(t *testing.T) {
	t.Parallel()
	get := serve(t, Playground())
	resp, body := get("/playground")
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, PlaygroundCSP, resp.Header.Get("Content-Security-Policy"))
	require.NotContains(t, body, "//cdn", "no asset from elsewhere")
	script := regexp.MustCompile(`src="(/playground/assets/[^"]+\.js)"`).FindStringSubmatch(body)
	require.NotNil(t, script, "index.html loads the built bundle")
	resp, js := get(script[1])
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Cache-Control"), "immutable")
	require.Contains(t, js, "verifyEmailWithCode", "the example operations are built in")

	resp, _ = get("/playground/index.html")
	require.Equal(t, 404, resp.StatusCode, "only under assets/")
}
