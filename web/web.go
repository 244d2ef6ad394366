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
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	}
	mux.HandleFunc("GET /{$}", page)
	mux.HandleFunc("GET /verify-email", page)
	mux.HandleFunc("GET /sign-in", page)
	assets := http.FileServerFS(files)
	mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// File names carry a content hash, so they never change.
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(w, r)
	}))
	return mux
}
