package account

import (
	"errors"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"

	"github.com/verifier/verifier/internal/apperr"
	"github.com/verifier/verifier/internal/token"
)

// Limits of the contract.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
	MaxEmailLen    = 254 // RFC 5321 path limit
	maxLocalLen    = 64
	// maxTokenArg separates "oversized argument" (BAD_USER_INPUT) from
	// "not a token" (INVALID_TOKEN).
	maxTokenArg = 512
)

// NormalizeEmail checks raw and returns the form stored and compared:
// trimmed and lower-cased. The checks apply to the lower-cased form, as it
// is the one stored: lower-casing can lengthen a character ("Ⱥ" is 2 bytes,
// "ⱥ" 3), which must not carry an address past the length limits.
func NormalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case e == "":
		return "", apperr.Errorf(apperr.BadUserInput, "email is required")
	case !utf8.ValidString(raw):
		// Checked on raw: lower-casing would turn bad bytes into U+FFFD.
		return "", apperr.Errorf(apperr.BadUserInput, "email is not valid text")
	case len(e) > MaxEmailLen:
		// Bytes, as SMTP counts a path (RFC 5321, and RFC 6531 for UTF-8):
		// "characters" told someone with 186 accented ones to shorten an
		// address that looked short enough.
		return "", apperr.Errorf(apperr.BadUserInput, "email must be at most %d bytes long (a letter outside ASCII takes 2 to 4)", MaxEmailLen)
	}
	addr, err := mail.ParseAddress(e)
	at := strings.LastIndexByte(e, '@')
	// ParseAddress also accepts "Name <a@b>" and comments; an address field
	// holds the bare address only.
	if err != nil || addr.Address != e || at < 1 || at > maxLocalLen {
		return "", apperr.Errorf(apperr.BadUserInput, "email is not a valid address")
	}
	if strings.ContainsFunc(e[:at], hiddenRune) {
		return "", apperr.Errorf(apperr.BadUserInput, "email is not a valid address: it has an invisible, control or replacement character")
	}
	if !mailDomain(e[at+1:]) {
		return "", apperr.Errorf(apperr.BadUserInput, "email is not a valid address")
	}
	return e, nil
}

// hiddenRune reports whether r cannot stand in an address that a person
// reads and types: net/mail takes any character outside ASCII in a local
// part (RFC 6532), so without this check a control (U+0085), a line
// separator (U+2028), a space (U+00A0), a format character (a bidi
// override U+202E, a zero-width space U+200B, a soft hyphen, U+FEFF) would
// be stored: an address shown as another's, or as something its owner
// cannot type. U+FFFD is what a JSON decoder makes of a lone surrogate
// escape ("\ud800") or of bytes that are not UTF-8: never what was sent.
func hiddenRune(r rune) bool {
	return r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.IsSpace(r)
}

// maxLabelLen is DNS's bound on a label (RFC 1035).
const maxLabelLen = 63

// mailDomain reports whether d can be the domain of a mailbox: a host name
// of two labels or more (RFC 5321's Domain), each label letters, digits and
// hyphens, neither starting nor ending with a hyphen, an ASCII label at
// most 63 bytes, and a last label not all digits. Letters and marks of any
// script count, for internationalized names (bücher.de). net/mail takes
// any dot-atom (exa_mple.com, -example.com, 1.2.3.4), which no mail
// server can be asked to deliver to; address literals ([…]) stay refused.
func mailDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		ascii := true
		for _, r := range l {
			switch {
			case r == '-', r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc)):
				ascii = false
			default:
				return false
			}
		}
		// A non-ASCII label's 63 bytes are those of its xn-- form, not
		// of its UTF-8: left to the mail server.
		if ascii && len(l) > maxLabelLen {
			return false
		}
	}
	return strings.TrimLeft(labels[len(labels)-1], "0123456789") != ""
}

// CheckPassword enforces the contract's length rule, counted in characters.
func CheckPassword(pw string) error {
	// U+FFFD is what a JSON decoder makes of a lone surrogate escape
	// ("\ud800") or of bytes that are not UTF-8: two different passwords
	// would hash alike, and neither as typed.
	if !utf8.ValidString(pw) || strings.ContainsRune(pw, utf8.RuneError) {
		return apperr.Errorf(apperr.BadUserInput, "password is not valid text")
	}
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		return apperr.Errorf(apperr.BadUserInput, "password must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return apperr.Errorf(apperr.BadUserInput, "password must be at most %d characters", MaxPasswordLen)
	}
	return nil
}

// checkToken screens a token argument before any lookup.
func checkToken(name, tok string) error {
	switch {
	case tok == "":
		return apperr.Errorf(apperr.BadUserInput, "%s is required", name)
	case len(tok) > maxTokenArg:
		return apperr.Errorf(apperr.BadUserInput, "%s is too long", name)
	case !token.WellFormed(tok):
		return apperr.Errorf(apperr.InvalidToken, "%s is not valid", name)
	}
	return nil
}

// Limits of register's optional inputs.
const (
	maxRedirectLen = 2048
	maxLocaleLen   = 35 // RFC 5646's longest tag in practice, with room
)

// RegisterInput is what register takes.
type RegisterInput struct {
	Email, Password string
	// RedirectTo, if set, is where the person is sent once verified.
	RedirectTo *string
	// Locale, if set, is the BCP 47 language of the emails.
	Locale *string
}

// CheckRedirect checks a redirectTo: an absolute http(s) URL without user
// info or fragment (clients append "#receipt=…" to it) whose origin is one
// of origins (PUBLIC_URL's and
// REDIRECT_ALLOWLIST's, as browsers write them), else BAD_USER_INPUT. The
// list keeps the service from becoming an open redirector that hands a
// receipt to any site.
func CheckRedirect(raw string, origins []string) (string, error) {
	bad := apperr.Errorf(apperr.BadUserInput, "redirectTo must be an absolute http(s) URL, without user info, of at most %d bytes", maxRedirectLen)
	if raw == "" || len(raw) > maxRedirectLen || !utf8.ValidString(raw) || strings.ContainsFunc(raw, unicode.IsControl) {
		return "", bad
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", bad
	}
	if o := Origin(u); !slices.Contains(origins, o) {
		// The developer of the app that sent it reads this: which origin,
		// and the setting that allows one (the list itself stays ours).
		return "", apperr.Errorf(apperr.BadUserInput, "redirectTo is not on an allowed origin: %s is neither PUBLIC_URL's origin nor in the service's REDIRECT_ALLOWLIST", o)
	}
	if strings.Contains(raw, "#") {
		// On an allowed origin: say what is wrong, not "allowed origin".
		return "", apperr.Errorf(apperr.BadUserInput, "redirectTo must have no fragment (#…): the receipt is appended there as #receipt=…")
	}
	// Stored as written back (escaped), which can be longer than typed.
	if to := u.String(); len(to) <= maxRedirectLen {
		return to, nil
	}
	return "", bad
}

// Origin is u's origin as browsers send it: scheme and host in lower case,
// without a default port.
func Origin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(u.Scheme == "https" && p == "443") && !(u.Scheme == "http" && p == "80") {
		host += ":" + p
	}
	return strings.ToLower(u.Scheme) + "://" + host
}

// NormalizeLocale returns the canonical BCP 47 form of a locale, or
// BAD_USER_INPUT for one that is too long or not a language tag at all.
// A well-formed tag is never refused (the contract: unknown ones fall
// back to English): a subtag unknown to the IANA registry is dropped, as
// no templates can be named by it ("de-AT-foobar" keeps "de-AT", which
// the mailer matches to German), and a tag whose language is unknown or
// unnamed ("zz", "zz-AT", "und") is English rather than a region's guess.
// A known language without templates (pt-BR) is kept: the mailer picks
// the closest language it has, English when none is close, when it sends.
func NormalizeLocale(raw string) (string, error) {
	if raw == "" {
		return "en", nil
	}
	if len(raw) > maxLocaleLen {
		return "", apperr.Errorf(apperr.BadUserInput, "locale is too long")
	}
	tag, err := language.Parse(raw)
	if _, unknown := errors.AsType[language.ValueError](err); err != nil && !unknown {
		return "", apperr.Errorf(apperr.BadUserInput, "locale is not a BCP 47 language tag")
	}
	if base, _, _ := tag.Raw(); base.String() == "und" {
		return "en", nil
	}
	if len(tag.String()) > maxLocaleLen {
		return "", apperr.Errorf(apperr.BadUserInput, "locale is too long")
	}
	return tag.String(), nil
}
