package testkit

import (
	"testing"

	"go.uber.org/goleak"
)

// ignoredGoroutines are goroutines that outlive a test by design, never by
// a forgotten Stop; each entry must say who starts it and why it stays.
// None does today: every database, broker, SMTP sink and server a test
// opens is closed by its cleanup, database/sql's connection opener
// included. Add here (or pass to VerifyTestMain) only what a library keeps
// for the life of the process.
var ignoredGoroutines []goleak.Option

// VerifyTestMain runs m and fails the run if any goroutine is left once
// every test has ended, other than the few ignoredGoroutines.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(append([]goleak.Option(nil), ignoredGoroutines...), opts...)...)
}

// FindLeaks reports goroutines left running other than the few
// ignoredGoroutines (and opts), for a TestMain that must do more after its
// tests than VerifyTestMain allows (e2e prints its fault table first).
func FindLeaks(opts ...goleak.Option) error {
	return goleak.Find(append(append([]goleak.Option(nil), ignoredGoroutines...), opts...)...)
}
