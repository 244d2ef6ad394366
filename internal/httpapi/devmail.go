package httpapi

import (
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/verifier/verifier/internal/delivery"
)

var linkRE = regexp.MustCompile(`https?://\S+`)

// codeRE finds the one-time code in an email's text as the built-in
// templates write it ("Your code: 123456", "Dein Code: 123456"), also
// grouped ("123 456") as a template of TEMPLATES_DIR may write it.
var codeRE = regexp.MustCompile(`(?i)\bcode:\s*(\d{3})[ -]?(\d{3})\b`)

// devMailListed is how many of the newest emails /dev/mail and
// /dev/mail.json show: a page a person scrolls, and more than a test
// run sends before it reads.
const devMailListed = 100

var devMailPage = template.Must(template.New("devmail").Funcs(template.FuncMap{
	"links": func(text string) []string { return linkRE.FindAllString(text, -1) },
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dev mailbox · verifier</title>
<style>
 :root{color-scheme:light dark;font-family:system-ui,sans-serif}
 .state{font-size:.8rem;font-weight:600;letter-spacing:.03em;padding:.1rem .45rem;border-radius:999px;border:1px solid #8886}
 .state-SENT{color:#1a7f37;border-color:#1a7f3766}
 .state-DEFERRED{color:#9a6700;border-color:#9a670066}
 .state-FAILED{color:#cf222e;border-color:#cf222e66}
 main{max-width:52rem;margin:2rem auto;padding:0 1rem}
 article{border:1px solid #8884;border-radius:8px;padding:1rem;margin:1rem 0}
 pre{white-space:pre-wrap;font-size:.9rem}
 .meta{color:#888;font-size:.9rem}
</style></head>
<body><main>
<h1>Dev mailbox</h1>
<p>SMTP_URL is empty, so mail is kept here instead of being sent. Newest first. For tests: <a href="/dev/mail.json">/dev/mail.json</a>.</p>
{{range .}}<article>
 <h2>{{.Subject}}</h2>
 <p class="meta">To {{.To}} · <span class="state state-{{.State}}">{{.State}}</span> · {{ago .At}}</p>
 {{range links .Text}}<p><a href="{{.}}">{{.}}</a></p>{{end}}
 <details><summary>Text</summary><pre>{{.Text}}</pre></details>
</article>{{else}}<p>No mail yet. Sign up at <a href="/">the start page</a>.</p>{{end}}
</main></body></html>
`))

// devMailCSP is /dev/mail's Content-Security-Policy: its own inline
// stylesheet and nothing else, never framed.
const devMailCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// devMail lists the dev outbox's mail with clickable links.
func (o Options) devMail(w http.ResponseWriter, r *http.Request) {
	mails, ok := o.devMails(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Live links are on this page: no site may frame it (a page the
	// developer visits could overlay it and have them click one), and it
	// runs no script at all, whatever an email's text holds.
	h.Set("Content-Security-Policy", devMailCSP)
	h.Set("X-Frame-Options", "DENY")
	if err := devMailPage.Execute(w, mails); err != nil {
		o.Log.Warn("rendering dev mail", "err", err)
	}
}

// devMailJSON is one email of /dev/mail.json.
type devMailJSON struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	// Link is the email's verification link, or its first link, or "".
	Link string `json:"link"`
	// Code is the one-time code the text shows after "code:", or "": a
	// script that types the code, as a person reading the email on
	// another device would, needs no pattern of its own.
	Code  string    `json:"code"`
	State string    `json:"state"`
	At    time.Time `json:"at"`
}

// devMailJSONList serves /dev/mail.json: what /dev/mail shows, for tests
// and scripts, newest first.
func (o Options) devMailJSONList(w http.ResponseWriter, r *http.Request) {
	mails, ok := o.devMails(w, r)
	if !ok {
		return
	}
	out := make([]devMailJSON, 0, len(mails))
	for _, m := range mails {
		out = append(out, devMailJSON{To: m.To, Subject: m.Subject, Text: m.Text, Link: mainLink(m.Text), Code: mailCode(m.Text), State: m.State.String(), At: m.At.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

// devMails reads the mail both views show, under the same rules, or
// answers the request itself and reports false.
func (o Options) devMails(w http.ResponseWriter, r *http.Request) ([]delivery.Copy, bool) {
	if o.DevMailLoopbackOnly && !(loopbackPeer(r) && loopbackHost(r)) {
		http.NotFound(w, r)
		return nil, false
	}
	mails, err := o.DevOutbox.List(r.Context(), devMailListed)
	if err != nil {
		o.Log.Error("listing dev mail", "err", err)
		http.Error(w, "could not read the dev outbox", http.StatusServiceUnavailable)
		return nil, false
	}
	// Every listed link is live: kept out of caches and other sites' logs.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	return mails, true
}

// mainLink is the link a person would click in an email's text: the
// verification link if there is one, else the first.
func mainLink(text string) string {
	links := linkRE.FindAllString(text, -1)
	for _, l := range links {
		if strings.Contains(l, "/verify-email?") {
			return l
		}
	}
	if len(links) > 0 {
		return links[0]
	}
	return ""
}

// mailCode is the one-time code in an email's text, or "".
func mailCode(text string) string {
	if m := codeRE.FindStringSubmatch(text); m != nil {
		return m[1] + m[2]
	}
	return ""
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

// loopbackHost reports whether the request names this machine (Host
// localhost or a loopback address). A loopback peer is not enough: a page
// on another site whose name was made to resolve to 127.0.0.1 (DNS
// rebinding) reaches the service from the browser on this machine, as
// does whatever a proxy here passes on, and both name another host.
func loopbackHost(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}
