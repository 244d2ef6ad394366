package testkit

import (
	"testing"

	"go.uber.org/goleak"
)

// ignoredGoroutines are goroutines that outlive a test by design, never by
// a forgotten Stop. Each entry says who starts it and why it stays.
var ignoredGoroutines = []goleak.Option{
	// database/sql starts one connection opener per *sql.DB and ends it in
	// DB.Close; a package-level pool (the pgx stdlib driver's, opened by
	// databasetest for the admin connection of a whole run) keeps it.
	goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
}

// VerifyTestMain runs m and fails the run if any goroutine is left once
// every test has ended, other than the few ignoredGoroutines.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(append([]goleak.Option(nil), ignoredGoroutines...), opts...)...)
}
