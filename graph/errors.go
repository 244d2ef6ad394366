package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/apperr"
)

// ErrorPresenter is the one place where errors become the contract's
// extensions.code. A client-facing apperr.Error keeps its message; gqlgen's
// own parse and validation errors keep their codes; anything else is logged
// in full and reaches the client as a bare INTERNAL, so no SQL, stack or
// host name leaks.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var appErr *apperr.Error
		if errors.As(err, &appErr) {
			gqlErr.Message = appErr.Message
			gqlErr.Extensions = map[string]any{"code": string(appErr.Code)}
			if appErr.Code == apperr.RateLimited {
				gqlErr.Extensions["retryAfterSeconds"] = account.RetryAfterSeconds(appErr.RetryAfter)
			}
			return gqlErr
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			log.Debug("request ended before it finished", "path", gqlErr.Path.String(), "err", err)
		} else if _, own := gqlErr.Extensions["code"]; own {
			return gqlErr // raised by gqlgen before any resolver ran
		} else {
			log.Error("internal error", "path", gqlErr.Path.String(), "err", err)
		}
		return &gqlerror.Error{
			Message:    "internal error",
			Path:       gqlErr.Path,
			Locations:  gqlErr.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal)},
		}
	}
}

// RecoverFunc turns a resolver panic into an INTERNAL error after logging
// the stack; the process keeps serving.
func RecoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.Error("panic in resolver", "panic", p, "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	}
}
