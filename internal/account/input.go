package account

import (
	"net/mail"
	"strings"
	"unicode/utf8"

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
		return "", apperr.Errorf(apperr.BadUserInput, "email must be at most %d characters", MaxEmailLen)
	}
	addr, err := mail.ParseAddress(e)
	at := strings.LastIndexByte(e, '@')
	// ParseAddress also accepts "Name <a@b>" and comments; an address field
	// holds the bare address only.
	if err != nil || addr.Address != e || at < 1 || at > maxLocalLen {
		return "", apperr.Errorf(apperr.BadUserInput, "email is not a valid address")
	}
	domain := e[at+1:]
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.ContainsAny(domain, "[]") {
		return "", apperr.Errorf(apperr.BadUserInput, "email is not a valid address")
	}
	return e, nil
}

// CheckPassword enforces the contract's length rule, counted in characters.
func CheckPassword(pw string) error {
	if !utf8.ValidString(pw) {
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
