// Package web serves the browser app from the binary. Until the full app
// (issue "Step 2") replaces them, these are two small pages: sign-up with a
// live "check your inbox" status, and the confirm page behind the email link.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves / (sign-up), /verify-email (confirm) and the assets.
func Handler() http.Handler {
	files, _ := fs.Sub(static, "static")
	assets := http.FileServerFS(files)
	mux := http.NewServeMux()
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			// The confirm page's URL holds a token: never send it on as a
			// referrer, and never let the page be framed.
			w.Header().Set("Referrer-Policy", "no-referrer")
			w.Header().Set("X-Frame-Options", "DENY")
			w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
			w.Header().Set("Cache-Control", "no-store")
			http.ServeFileFS(w, r, files, name)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /verify-email", page("verify.html"))
	mux.Handle("GET /assets/", assets)
	return mux
}
