package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"strings"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/language"
)

// Templates are the emails in every language there are templates for: the
// built-in ones (templates/<locale>/<kind>.{txt,html}) with an operator's
// folder (TEMPLATES_DIR) laid over them. Every template has been rendered
// once with sample data of every case before a Templates exists, so a
// mistake in one stops the process at start instead of breaking an email
// later.
type Templates struct {
	// sets[0] is English: the language of every locale nothing else is
	// close to, whose verification subject keeps "Verify" (the contract).
	sets    []localeSet
	matcher language.Matcher
}

// localeSet is one language's emails, by kind.
type localeSet struct {
	tag   language.Tag
	kinds map[string]pair
}

// pair is one kind's two parts; the subject is the text template's
// "subject" block, so a translator owns every word of an email.
type pair struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// VerifyView is what verify.txt and verify.html get.
type VerifyView struct {
	// Link is the verification link; the text part must show it on a line
	// of its own (the contract).
	Link string
	// Code is the one-time code; empty when the registration's code is
	// dead (the email then carries the link only).
	Code string
	// Expires and CodeExpires are when the link and the code stop
	// working, written for the locale (UTC); ExpiresAt and CodeExpiresAt
	// are the same instants, for a template that formats them itself.
	Expires, CodeExpires     string
	ExpiresAt, CodeExpiresAt time.Time
	// Resend: the person asked for this email again.
	Resend bool
	// ChangeEmail: the email confirms a new address of an existing account.
	ChangeEmail bool
}

// ExistsView is what exists.txt and exists.html get: the notice to an
// address that has an account, after someone tried to register it
// (ChangeEmail false) or to move another account to it (ChangeEmail true).
type ExistsView struct{ ChangeEmail bool }

// ChangeView is what change.txt and change.html get: the notice to an
// account's address that a change to NewEmail (masked: n…@example.com) was
// asked for.
type ChangeView struct{ NewEmail string }

// kind is one email: a pair of files, NAME.txt and NAME.html.
type kind struct {
	name string
	// fields names what its templates get, for the error that says a
	// template asked for something else.
	fields string
	// samples take every branch the built-in templates have, so a
	// mistake in any of them shows at start.
	samples []any
}

// sampleLink stands in for a real link when the templates are checked.
const sampleLink = "https://verifier.example/verify-email?token=sample-token"

var kinds = func() []kind {
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	v := VerifyView{Link: sampleLink, Code: "042917", Expires: "(expiry)", CodeExpires: "(code expiry)", ExpiresAt: at, CodeExpiresAt: at}
	noCode := v
	noCode.Code, noCode.CodeExpires, noCode.CodeExpiresAt = "", "", time.Time{}
	resend, change, changeNoCode := v, v, noCode
	resend.Resend, change.ChangeEmail, changeNoCode.ChangeEmail = true, true, true
	return []kind{
		{"verify", "Link, Code, Expires, CodeExpires, ExpiresAt, CodeExpiresAt, Resend, ChangeEmail", []any{v, noCode, resend, change, changeNoCode}},
		{"exists", "ChangeEmail", []any{ExistsView{false}, ExistsView{true}}},
		{"change", "NewEmail", []any{ChangeView{"n…@example.com"}}},
	}
}()

//go:embed templates
var builtinFS embed.FS

// builtin is parsed once, when the package loads: a mistake in a built-in
// template fails every test of the package, and every start, at once
// (TestEveryLocaleRendersEveryEmail then renders each of them).
var builtin = func() *Templates {
	t, err := LoadTemplates("")
	if err != nil {
		panic(err)
	}
	return t
}()

// BuiltinTemplates returns the templates shipped in the binary.
func BuiltinTemplates() *Templates { return builtin }

// LoadTemplates returns the built-in templates with those of dir laid over
// them (dir empty: the built-in ones alone). dir holds one folder per
// locale, named by its BCP 47 tag (de, pt-BR), with any of verify.txt,
// verify.html, exists.txt, exists.html, change.txt and change.html; a
// file missing there is the built-in one of the closest language. Every
// template is parsed and rendered with sample data; the error names the
// file (and the line where there is one). A file or folder whose name is
// not one of these is an error too: a misspelt override would otherwise
// be ignored in silence.
func LoadTemplates(dir string) (*Templates, error) {
	sets, err := readSets(builtinFS, "templates", "built-in ")
	if err != nil {
		return nil, err
	}
	t := newTemplates(sets)
	if dir != "" {
		over, err := readSets(os.DirFS(dir), ".", strings.TrimRight(dir, "/")+"/")
		if err != nil {
			return nil, err
		}
		sets = t.overlay(over)
		t = newTemplates(sets)
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return t, nil
}

// newTemplates orders sets English first and builds their matcher.
func newTemplates(sets []localeSet) *Templates {
	t := &Templates{}
	for _, s := range sets {
		if s.tag == language.English {
			t.sets = append([]localeSet{s}, t.sets...)
		} else {
			t.sets = append(t.sets, s)
		}
	}
	tags := make([]language.Tag, len(t.sets))
	for i, s := range t.sets {
		tags[i] = s.tag
	}
	t.matcher = language.NewMatcher(tags)
	return t
}

// overlay lays an operator's sets over t's: each file replaces the one of
// its locale, and a new locale starts as a copy of the closest built-in
// language.
func (t *Templates) overlay(over []localeSet) []localeSet {
	sets := make([]localeSet, 0, len(t.sets)+len(over))
	for _, s := range t.sets {
		sets = append(sets, localeSet{tag: s.tag, kinds: clone(s.kinds)})
	}
	for _, o := range over {
		i := indexOf(sets, o.tag)
		if i < 0 {
			sets = append(sets, localeSet{tag: o.tag, kinds: clone(t.match(o.tag.String()).kinds)})
			i = len(sets) - 1
		}
		for name, p := range o.kinds {
			q := sets[i].kinds[name]
			if p.text != nil {
				q.text = p.text
			}
			if p.html != nil {
				q.html = p.html
			}
			sets[i].kinds[name] = q
		}
	}
	return sets
}

func clone(m map[string]pair) map[string]pair {
	c := make(map[string]pair, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func indexOf(sets []localeSet, tag language.Tag) int {
	for i, s := range sets {
		if s.tag == tag {
			return i
		}
	}
	return -1
}

// readSets parses the templates under root in fsys: one folder per locale,
// known file names only. label prefixes the names in errors.
func readSets(fsys fs.FS, root, label string) ([]localeSet, error) {
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return nil, fmt.Errorf("email templates: %s: %w", strings.TrimSuffix(label, "/"), unwrapPath(err))
	}
	var sets []localeSet
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // .DS_Store, editor and version-control files
		}
		where := label + e.Name()
		if !e.IsDir() {
			return nil, fmt.Errorf("email templates: %s: not a folder; put templates in one folder per locale (en/verify.txt, de/verify.html, …)", where)
		}
		tag, err := language.Parse(e.Name())
		if err != nil {
			return nil, fmt.Errorf("email templates: %s: the folder's name is not a BCP 47 language tag (like en, de or pt-BR)", where)
		}
		if indexOf(sets, tag) >= 0 {
			return nil, fmt.Errorf("email templates: %s: a second folder for locale %s", where, tag)
		}
		s := localeSet{tag: tag, kinds: map[string]pair{}}
		files, err := fs.ReadDir(fsys, path.Join(root, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("email templates: %s: %w", where, unwrapPath(err))
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".") {
				continue
			}
			file := where + "/" + f.Name()
			name, ext, _ := strings.Cut(f.Name(), ".")
			if f.IsDir() || !knownKind(name) || (ext != "txt" && ext != "html") {
				return nil, fmt.Errorf("email templates: %s: unknown template; the names are verify, exists and change, each .txt or .html", file)
			}
			src, err := fs.ReadFile(fsys, path.Join(root, e.Name(), f.Name()))
			if err != nil {
				return nil, fmt.Errorf("email templates: %s: %w", file, unwrapPath(err))
			}
			p := s.kinds[name]
			if ext == "txt" {
				if p.text, err = texttemplate.New(file).Option("missingkey=error").Parse(string(src)); err == nil && p.text.Lookup("subject") == nil {
					err = fmt.Errorf("%s: no subject; start the file with {{define \"subject\"}}…{{end}}", file)
				}
			} else {
				p.html, err = htmltemplate.New(file).Option("missingkey=error").Parse(string(src))
			}
			if err != nil {
				return nil, fmt.Errorf("email templates: %w", err)
			}
			s.kinds[name] = p
		}
		sets = append(sets, s)
	}
	return sets, nil
}

// unwrapPath drops an fs.PathError's path, relative to the folder and
// named better by the caller.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func knownKind(name string) bool {
	for _, k := range kinds {
		if k.name == name {
			return true
		}
	}
	return false
}

// check renders every template of every locale with every sample, and
// holds the verification email to the contract: the link on a line of its
// own in the text, in the HTML, and "Verify" in the English subject.
func (t *Templates) check() error {
	for _, s := range t.sets {
		for _, k := range kinds {
			p, ok := s.kinds[k.name]
			if !ok || p.text == nil || p.html == nil {
				return fmt.Errorf("email templates: %s: %s.txt or %s.html missing", s.tag, k.name, k.name)
			}
			for _, data := range k.samples {
				m, err := render("sample", "sample@example.com", p, data)
				if err != nil {
					return fmt.Errorf("email templates: %w (the %s templates get: %s)", err, k.name, k.fields)
				}
				if k.name != "verify" {
					continue
				}
				if !strings.Contains("\n"+m.Text+"\n", "\n"+sampleLink+"\n") {
					return fmt.Errorf("email templates: %s: the link must stand on a line of its own, {{.Link}} alone on its line", p.text.Name())
				}
				if !strings.Contains(m.HTML, sampleLink) {
					return fmt.Errorf("email templates: %s: the email has no {{.Link}}", p.html.Name())
				}
				if base, _ := s.tag.Base(); base.String() == "en" && !strings.Contains(m.Subject, "Verify") {
					return fmt.Errorf("email templates: %s: the English subject must contain \"Verify\" (clients and tests look for it)", p.text.Name())
				}
			}
		}
	}
	return nil
}

// match returns the set of the language closest to locale (a BCP 47 tag;
// de-AT finds de), English when none is close.
func (t *Templates) match(locale string) localeSet {
	tag, _ := language.Parse(locale) // a malformed tag is und: English
	_, i, conf := t.matcher.Match(tag)
	if conf == language.No {
		return t.sets[0]
	}
	return t.sets[i]
}

// Locales lists the locales there are templates for, English first.
func (t *Templates) Locales() []string {
	out := make([]string, len(t.sets))
	for i, s := range t.sets {
		out[i] = s.tag.String()
	}
	return out
}

// Verification renders the email with a verification link and code, in
// the language closest to d.Locale.
func (t *Templates) Verification(id, to string, d VerificationData) (Message, error) {
	s := t.match(d.Locale)
	v := VerifyView{
		Link: d.Link, Code: d.Code, Resend: d.Resend, ChangeEmail: d.ChangeEmail,
		Expires: formatTime(s.tag, d.Expires), ExpiresAt: d.Expires.UTC(),
	}
	if d.Code != "" {
		v.CodeExpires, v.CodeExpiresAt = formatTime(s.tag, d.CodeExpires), d.CodeExpires.UTC()
	}
	return render(id, to, s.kinds["verify"], v)
}

// AlreadyRegistered renders the notice sent when someone registers an
// address that has an account, or asks to move their account to it
// (changeEmail).
func (t *Templates) AlreadyRegistered(id, to, locale string, changeEmail bool) (Message, error) {
	return render(id, to, t.match(locale).kinds["exists"], ExistsView{changeEmail})
}

// EmailChangeNotice renders the notice to an account's address that a
// change to another address was asked for; newEmail is shown masked.
func (t *Templates) EmailChangeNotice(id, to, locale, newEmail string) (Message, error) {
	return render(id, to, t.match(locale).kinds["change"], ChangeView{newEmail})
}

func render(id, to string, p pair, data any) (Message, error) {
	var subject, text, html bytes.Buffer
	if err := p.text.ExecuteTemplate(&subject, "subject", data); err != nil {
		return Message{}, err
	}
	if err := p.text.Execute(&text, data); err != nil {
		return Message{}, err
	}
	if err := p.html.Execute(&html, data); err != nil {
		return Message{}, err
	}
	m := Message{
		ID: id, To: to,
		// One line, whatever the template's layout: a header cannot
		// break across lines. The code stays out of the built-in
		// subjects: lock screens and mail lists show subjects to
		// whoever is near.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		// The subject block's line and the like leave blank lines on top.
		Text: strings.TrimLeft(text.String(), "\r\n"),
		HTML: strings.TrimLeft(html.String(), " \t\r\n"),
	}
	switch {
	case m.Subject == "":
		return Message{}, fmt.Errorf("%s: the subject is empty", p.text.Name())
	case strings.TrimSpace(m.Text) == "":
		return Message{}, fmt.Errorf("%s: the text is empty", p.text.Name())
	case strings.TrimSpace(m.HTML) == "":
		return Message{}, fmt.Errorf("%s: the HTML is empty", p.html.Name())
	}
	return m, nil
}

// Names of weekdays and months where Go's time package has English only.
var (
	germanDays   = [...]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"}
	germanMonths = [...]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
)

// formatTime writes when a link or code stops working, in UTC (the
// service knows no reader's time zone, so it says which one it means), the
// way the locale's language writes dates; a language without its own rule
// gets the unambiguous ISO 8601 form.
func formatTime(tag language.Tag, t time.Time) string {
	t = t.UTC()
	switch base, _ := tag.Base(); base.String() {
	case "en":
		return t.Format("Mon, 2 Jan 2006 15:04 MST")
	case "de":
		return fmt.Sprintf("%s, %d. %s %d, %s Uhr (UTC)", germanDays[t.Weekday()], t.Day(), germanMonths[t.Month()-1], t.Year(), t.Format("15:04"))
	default:
		return t.Format("2006-01-02 15:04 MST")
	}
}
