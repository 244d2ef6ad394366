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

	// The confirm page's URL holds a live token: stored by no cache.
	resp, _ = get("/verify-email?token=abc")
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
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

// TestAssetsOnly: under assets/ only the built files are served, never
// the folder's listing nor, through an escaped ../, the page itself
// without its headers (framable, no CSP) and cached for a year.
func TestAssetsOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h      http.Handler
		prefix string
	}{{Handler(), "/assets/"}, {Playground(), "/playground/assets/"}} {
		srv := httptest.NewServer(tc.h)
		t.Cleanup(srv.Close)
		for _, p := range []string{"", "..%2F", "..%2F..%2F", "..%2Findex.html", "%2E%2E%2F", "x%2F..%2F..%2F", "nope.js"} {
			// Sent as written: a client would clean an unescaped ../.
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			req.URL.Opaque = "//" + req.URL.Host + tc.prefix + p
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s%s: %.80s", tc.prefix, p, body)
			require.NotContains(t, resp.Header.Get("Cache-Control"), "immutable", tc.prefix+p)
		}
	}
}
