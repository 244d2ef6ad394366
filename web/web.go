// Package web serves the browser app from the binary: the sign-up page with
// its live "check your inbox" screen at /, the confirm page behind the
// email link at /verify-email, and the sign-in page (with the signed-in
// view and the change-address screen) at /sign-in.
//
// The app's source is in app/ (TypeScript, built with Vite); its build
// output in dist/ is committed, so `go run .` serves it on a fresh clone
// with no Node installed. CI rebuilds dist/ and fails on any difference.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed dist
var dist embed.FS

// Handler serves the app.
func Handler() http.Handler {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees dist exists
	}
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The confirm page's URL holds a token and the sign-in page a
		// password field: never send a URL on as a referrer, never let a
		// page be framed, run only our own code.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		if r.URL.Path == "/verify-email" {
			// Its URL is a live link: kept out of the browser's disk
			// cache and shared caches, as the page keeps it out of the
			// address bar and the history.
			h.Set("Cache-Control", "no-store")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeFileFS(w, r, files, "index.html")
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /verify-email", page)
	mux.HandleFunc("GET /sign-in", page)
	mux.Handle("GET /assets/", assetFiles(files, "/assets/", nil))
	return mux
}

// assetFiles serves the files of files' assets/ folder, at prefix
// followed by their names, and nothing else: no listing of the folder and
// no file outside it. A file server on the whole build would answer
// /assets/..%2F (the mux matches the escaped path, the file server cleans
// the unescaped one) with index.html, without its page's headers (no CSP,
// no frame-ancestors: framed by any site) and cached for a year. set, if
// not nil, adds the assets' own headers.
func assetFiles(files fs.FS, prefix string, set func(http.Header)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || !fs.ValidPath(name) || name == "." {
			http.NotFound(w, r)
			return
		}
		name = path.Join("assets", name)
		if st, err := fs.Stat(files, name); err != nil || !st.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// File names carry a content hash, so they never change.
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("X-Content-Type-Options", "nosniff")
		if set != nil {
			set(h)
		}
		http.ServeFileFS(w, r, files, name)
	})
}
