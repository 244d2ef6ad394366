package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// The playground's source is in app/playground/ (GraphiQL, built with
// Vite by `npm run build` in app/); its build output in dist-playground/
// is committed and compared in CI like dist/.
//
//go:embed dist-playground
var distPlayground embed.FS

// PlaygroundCSP is the playground's Content-Security-Policy: only the
// service's own scripts, workers and connections (GraphQL over POST and
// websockets on /query). GraphiQL's editor (Monaco) inserts <style>
// elements and sets style attributes at run time, hence 'unsafe-inline'
// for styles only; its fonts and icons are bundled as data: URLs, which
// load nothing from elsewhere.
const PlaygroundCSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Playground serves GraphiQL at /playground and its assets under
// /playground/assets/, all from the binary: it works with no internet.
func Playground() http.Handler {
	files, err := fs.Sub(distPlayground, "dist-playground")
	if err != nil {
		panic(err) // the embed pattern guarantees dist-playground exists
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /playground", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", PlaygroundCSP)
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, files, "index.html")
	})
	// The editor's workers are scripts of this origin, under the same CSP.
	mux.Handle("GET /playground/assets/", assetFiles(files, "/playground/assets/", func(h http.Header) {
		h.Set("Content-Security-Policy", PlaygroundCSP)
	}))
	return mux
}
