package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// readyTimeout bounds one /readyz answer: a probe must not hang on a
// stuck dependency.
const readyTimeout = 2 * time.Second

// Check is one thing /readyz asks. server.go lists them; any part of the
// service can contribute one (a database that takes writes, a broker
// link, a mail relay that accepts us).
type Check struct {
	Name string
	// Ping returns nil while the dependency works. Its error is logged,
	// never shown: /readyz is public.
	Ping func(context.Context) error
	// Advisory checks are reported ("degraded") without making /readyz
	// answer 503: taking the instance out of rotation would not help (a
	// mail relay that refuses us refuses every instance).
	Advisory bool
}

// ready answers 200 while every non-advisory check passes, 503 otherwise,
// with each check's state. The checks run in parallel.
func (o Options) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	errs := make([]error, len(o.Ready))
	var wg sync.WaitGroup
	for i, c := range o.Ready {
		wg.Go(func() { errs[i] = c.Ping(ctx) })
	}
	wg.Wait()

	status, checks := http.StatusOK, map[string]string{}
	for i, c := range o.Ready {
		switch {
		case errs[i] == nil:
			checks[c.Name] = "ok"
		case c.Advisory:
			checks[c.Name] = "degraded"
			o.Log.Warn("readiness check degraded", "check", c.Name, "err", errs[i])
		default:
			status, checks[c.Name] = http.StatusServiceUnavailable, "unavailable"
			o.Log.Warn("readiness check failed", "check", c.Name, "err", errs[i])
		}
	}
	word := "ok"
	if status != http.StatusOK {
		word = "unavailable"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
}
