package httpapi

import (
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"time"
)

var linkRE = regexp.MustCompile(`https?://\S+`)

var devMailPage = template.Must(template.New("devmail").Funcs(template.FuncMap{
	"links": func(text string) []string { return linkRE.FindAllString(text, -1) },
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev mailbox · verifier</title>
<style>
 :root{color-scheme:light dark;font-family:system-ui,sans-serif}
 main{max-width:52rem;margin:2rem auto;padding:0 1rem}
 article{border:1px solid #8884;border-radius:8px;padding:1rem;margin:1rem 0}
 pre{white-space:pre-wrap;font-size:.9rem}
 .meta{color:#888;font-size:.9rem}
</style></head>
<body><main>
<h1>Dev mailbox</h1>
<p>SMTP_URL is empty, so mail is kept here instead of being sent. Newest first.</p>
{{range .}}<article>
 <h2>{{.Subject}}</h2>
 <p class="meta">To {{.To}} · {{ago .CreatedAt}}</p>
 {{range links .Text}}<p><a href="{{.}}">{{.}}</a></p>{{end}}
 <details><summary>Text</summary><pre>{{.Text}}</pre></details>
</article>{{else}}<p>No mail yet. Sign up at <a href="/">the start page</a>.</p>{{end}}
</main></body></html>
`))

// devMail lists the dev outbox's mail with clickable links.
func (o Options) devMail(w http.ResponseWriter, r *http.Request) {
	if o.DevMailLoopbackOnly && !loopbackPeer(r) {
		http.NotFound(w, r)
		return
	}
	mails, err := o.DevOutbox.List(r.Context(), 100)
	if err != nil {
		o.Log.Error("listing dev mail", "err", err)
		http.Error(w, "could not read the dev outbox", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := devMailPage.Execute(w, mails); err != nil {
		o.Log.Warn("rendering dev mail", "err", err)
	}
}

// loopbackPeer reports whether the connection comes from this machine.
// Only the peer counts: X-Forwarded-For is whatever the client says.
func loopbackPeer(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
