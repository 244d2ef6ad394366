package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
)

// ErrorPresenter is the one place where errors become the contract's
// extensions.code. A client-facing apperr.Error keeps its message; gqlgen's
// own parse and validation errors keep their codes (their messages cut to
// maxMessageBytes, as they may quote the request); a resolver's other
// errors are logged in full and reach the client as a bare INTERNAL, so no
// SQL, stack or host name leaks. Nothing a client sent is logged: an error
// raised before any resolver ran without a code (gqlgen's transports put
// the request in those) is logged by kind only.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if appErr, ok := errors.AsType[*apperr.Error](err); ok {
			out := *gqlErr
			out.Message = appErr.Message
			out.Extensions = map[string]any{"code": string(appErr.Code)}
			if appErr.Code == apperr.RateLimited {
				out.Extensions["retryAfterSeconds"] = account.RetryAfterSeconds(appErr.RetryAfter)
			}
			if appErr.Code == apperr.InvalidCode {
				out.Extensions["attemptsLeft"] = appErr.AttemptsLeft
			}
			return &out
		}
		_, fromPanic := errors.AsType[panicError](err)
		switch {
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			log.DebugContext(ctx, "request ended before it finished", "path", gqlErr.Path.String(), "err", err)
		case gqlErr.Extensions["code"] != nil:
			// Raised by gqlgen or an extension before any resolver ran.
			out := *gqlErr
			out.Message = truncate(out.Message, maxMessageBytes)
			if out.Message == gqlgenNoOperationName {
				out.Message = "the document has more than one operation: name the one to run in operationName"
			}
			if m, ok := numberRefused[out.Message]; ok {
				out.Message = m
			}
			out.Message = kindRefused.ReplaceAllStringFunc(out.Message, plainKind)
			return &out
		case len(gqlErr.Path) == 0 && gqlErr.Message == gqlgenOneStream:
			return &gqlerror.Error{
				Message:    "a subscription selects exactly one field, aliases included: subscribe to each on its own",
				Locations:  gqlErr.Locations,
				Extensions: map[string]any{"code": string(apperr.BadUserInput)},
			}
		case len(gqlErr.Path) == 0 && !fromPanic:
			log.WarnContext(ctx, "request refused before it ran", "kind", fmt.Sprintf("%T", errors.Unwrap(err)))
			return &gqlerror.Error{
				Message:    "the request could not be read",
				Extensions: map[string]any{"code": string(apperr.BadUserInput)},
			}
		default:
			log.ErrorContext(ctx, "internal error", "path", gqlErr.Path.String(), "err", err)
		}
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gqlErr.Path,
			Locations:  gqlErr.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal)},
		}
	}
}

// gqlgenNoOperationName is gqlgen's "operation %s not found" for an
// empty operationName: the document has several operations (one would be
// picked, none fails validation or parsing first) and the client named
// none of them.
const gqlgenNoOperationName = "operation  not found"

// numberRefused replaces gqlparser's refusals of a JSON number sent for
// an Int variable (the admin API's first): they quote the value it failed
// to parse (0 for 1.5 or 1e3, the largest or smallest int64 beyond 64
// bits), never the number sent. The code stays gqlgen's.
var numberRefused = map[string]string{
	"cannot use value 0 as Int":                    "want an Int: a whole number, without a fraction or exponent",
	"cannot use value 9223372036854775807 as Int":  "want an Int: a whole number, and this one is too large",
	"cannot use value -9223372036854775808 as Int": "want an Int: a whole number, and this one is too small",
}

// kindRefused matches gqlparser's refusals of a variable's JSON value of
// the wrong kind, which name it by Go's reflect.Kind ("cannot use slice as
// String", "must be a RegisterInput, not a map").
var kindRefused = regexp.MustCompile(`^(?:cannot use (slice|map|bool) as (\w+)|must be an? (\w+), not an? (slice|map|bool))$`)

// goKinds names in JSON's words the Go kinds a decoded variable can have.
var goKinds = map[string]string{"slice": "an array", "map": "an object", "bool": "a boolean"}

// plainKind rewrites a refusal kindRefused matched in JSON's words.
func plainKind(msg string) string {
	m := kindRefused.FindStringSubmatch(msg)
	if m[1] != "" {
		return fmt.Sprintf("want %s, not %s", withArticle(m[2]), goKinds[m[1]])
	}
	return fmt.Sprintf("want %s (an object), not %s", withArticle(m[3]), goKinds[m[4]])
}

// withArticle puts "a" or "an" before a type's name: an Int, an ID, a
// String.
func withArticle(name string) string {
	if name != "" && strings.ContainsRune("AEIOU", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// gqlgenOneStream is gqlgen's refusal of a subscription that selects
// several fields. gqlparser's single-field rule counts field names, so
// two aliases of one field pass validation and reach gqlgen's executor,
// whose error has no code.
const gqlgenOneStream = "must subscribe to exactly one stream"

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// panicError is a recovered panic, so the presenter treats it as internal
// even where it has no path.
type panicError struct{ value any }

func (p panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// RecoverFunc turns a resolver panic into an INTERNAL error after logging
// the stack; the process keeps serving.
func RecoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", p, "stack", string(debug.Stack()))
		return panicError{p}
	}
}
