// Package bearer carries a request's Authorization: Bearer credential from
// the HTTP edge (httpapi's middleware) to whoever checks it (the account
// service), through the request context. It never logs or checks the
// value: that is the account service's (signer.VerifySession).
package bearer

import (
	"context"
	"net/http"
	"strings"
)

type key struct{}

// WithToken returns ctx carrying tok.
func WithToken(ctx context.Context, tok string) context.Context {
	return context.WithValue(ctx, key{}, tok)
}

// Token is the bearer credential in ctx, "" if none.
func Token(ctx context.Context) string {
	tok, _ := ctx.Value(key{}).(string)
	return tok
}

// FromRequest reads the credential of an "Authorization: Bearer …"
// header (the scheme case-insensitive, RFC 9110), "" if none.
func FromRequest(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
