// Package testkit is what every package's tests share: a logger, one clock
// stub, waits on signals with a deadline, and the goroutine-leak check each
// test package runs from TestMain.
//
// Only tests import it (and the test helpers beside the packages they stand
// in for, such as mail/mailtest); product code never does. Product code
// offers a test a signal through a small optional hook field (nil in
// production), such as outbox.Options.OnSettled, and the test waits on it
// here instead of polling.
//
// Every test package starts with
//
//	func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }
package testkit
