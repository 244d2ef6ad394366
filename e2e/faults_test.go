//go:build faults

package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // the same pure-Go driver as the service, to lock its file

	"github.com/verifier/verifier/internal/database/databasetest"
	"github.com/verifier/verifier/internal/testkit"
)

// Scenario sizes and fault lengths. Each is a choice of this suite, not a
// property of the service; they are sized so the whole suite runs in a
// few minutes on a 2-core machine.
const (
	// registrations per scenario: enough for a fault to land among
	// emails in flight, few enough to stay quick.
	registrations = 150
	// smtpLatency is the fault SMTP server's delay before it answers
	// DATA, like a real relay; it keeps emails in flight when a fault
	// lands.
	smtpLatency = 20 * time.Millisecond
	// smtpConnections is the service's default SMTP_CONNECTIONS: how many
	// emails can be in flight when it is killed.
	smtpConnections = 8
	// killLatency widens that window for the SIGKILL scenarios.
	killLatency = 60 * time.Millisecond
	// rabbitOutage is how long the suite's RabbitMQ node is stopped.
	rabbitOutage = 8 * time.Second
	// smtpPhase is the length of each SMTP outage phase (refusing, 421,
	// 451): about what a relay restart or a greylisting burst lasts.
	smtpPhase = 4 * time.Second
	// lockHold is how long another process holds SQLite's write lock:
	// longer than the service's busy timeout (10 s), so writes fail.
	lockHold = 15 * time.Second
	// readOnlyFor is how long the database files stay read-only.
	readOnlyFor = 8 * time.Second
	// readersDuringFault is the number of clients reading status while
	// the database is read-only, more than the service's SQLite pool (8).
	readersDuringFault = 12
	// stuckAddresses always answer 451: as many as the SMTP sessions
	// (SMTP_CONNECTIONS 8), the worst case for head-of-line blocking.
	stuckAddresses = 8
	// parallelVerifies is the number of concurrent clicks on one link.
	parallelVerifies = 100
	// sessionErrorDrain is the drain deadline after a 530: the issue
	// asks for a longer backoff on errors about the sender or session,
	// so recovery may rightly take longer than after a 4xx.
	sessionErrorDrain = 90 * time.Second
)

// env is one scenario's world: a fault SMTP server, the service, its
// database directory.
type env struct {
	t    *testing.T
	dir  string
	db   string // the SQLite file
	smtp *faultSMTP
	svc  *service
	// amqpURL is the scenario's vhost on the suite's RabbitMQ node, if any.
	amqpURL string
}

type envOptions struct {
	rabbit  bool
	latency time.Duration
	// asNobody runs the binary as an unprivileged user with a data
	// directory it owns, for faults root would not feel.
	asNobody bool
	// databaseURL replaces the SQLite file in the scenario's directory.
	databaseURL string
}

func setup(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	var runAs *user.User
	if o.asNobody {
		e.dir, runAs = nobodyDir(t)
	}
	e.db = filepath.Join(e.dir, "verifier.db")
	if o.rabbit {
		e.amqpURL = dedicatedRabbit(t)
	}
	addr := freeAddr(t)
	e.smtp = startSMTP(t, "http://"+addr, o.latency)
	dbURL := "sqlite:" + e.db
	if o.databaseURL != "" {
		dbURL = o.databaseURL
	}
	e.svc = newService(t, serviceOptions{
		addr: addr, databaseURL: dbURL, amqpURL: e.amqpURL, smtpURL: e.smtp.URL(), asUser: runAs,
	})
	e.svc.Start()
	e.svc.WaitReady()
	return e
}

// nobodyDir returns a data directory owned by user nobody, and that user,
// when the suite runs as root (root ignores file permissions). As any
// other user the suite's own user is subject to them already.
func nobodyDir(t *testing.T) (string, *user.User) {
	t.Helper()
	dir, err := os.MkdirTemp("", "faults-ro-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, nil
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("running as root, the read-only scenario needs setpriv (util-linux) to drop to user nobody: %v", err)
	}
	u, err := user.Lookup("nobody")
	require.NoError(t, err, "user nobody")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	require.NoError(t, os.Chown(dir, uid, gid))
	require.NoError(t, os.Chmod(dir, 0o700))
	return dir, u
}

// TestSIGKILL kills the service twice mid-load and restarts it on the same
// database: every accepted registration still gets one email, every click
// still reaches its subscription (clients reconnect, as real ones do), and
// on RabbitMQ every registration and verification is on verifier.public.
func TestSIGKILL(t *testing.T) {
	for _, rabbit := range []bool{false, true} {
		name := brokerName(rabbit)
		t.Run(name, func(t *testing.T) {
			e := setup(t, envOptions{rabbit: rabbit, latency: killLatency})
			kills := []int{registrations / 3, 2 * registrations / 3}
			o := loadOptions{target: registrations, crashDupBound: len(kills) * smtpConnections}
			if rabbit {
				o.events = bindEventAudit(t, e.amqpURL)
			}
			l := startLoad(t, e.svc, e.smtp, o)
			pending := 0
			for _, at := range kills {
				l.awaitAccepted(at)
				e.smtp.SenderKilled(e.svc.Kill())
				if rabbit {
					pending += e.unpublishedPublic()
				}
				e.svc.Start()
			}
			recovered := time.Now()
			var notes []string
			if rabbit {
				notes = append(notes, fmt.Sprintf("%d public events committed, not yet confirmed by the broker, at the kills", pending))
			}
			l.finish("SIGKILL ×2 mid-load, restart (SQLite, "+name+")", recovered, notes...)
		})
	}
}

// TestSIGTERMRestart restarts the service gracefully twice mid-load, as a
// deploy does: no waiting screen may be completed before VERIFIED (a
// standard graphql-ws client would never re-subscribe), nothing is lost.
func TestSIGTERMRestart(t *testing.T) {
	e := setup(t, envOptions{latency: killLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
	for _, at := range []int{registrations / 3, 2 * registrations / 3} {
		l.awaitAccepted(at)
		e.svc.Restart()
	}
	l.finish("SIGTERM ×2 mid-load, restart (SQLite, in-process)", time.Now())
}

// TestRabbitMQOutage stops the suite's RabbitMQ node mid-load and starts
// it again: sign-ups wait in the outbox, nothing is lost, and pushes
// missed during the outage are caught up.
func TestRabbitMQOutage(t *testing.T) {
	e := setup(t, envOptions{rabbit: true, latency: smtpLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
	l.awaitAccepted(registrations / 3)
	rabbitctl(t, "stop_app")
	time.Sleep(rabbitOutage) // the outage itself
	rabbitctl(t, "start_app")
	l.finish(fmt.Sprintf("RabbitMQ stopped %s, started (SQLite)", rabbitOutage), time.Now())
}

// TestRabbitMQAlarm sets off a memory alarm on the suite's RabbitMQ node
// mid-load: RabbitMQ blocks every connection that publishes and reads
// nothing more from it, while its heartbeats keep the connection looking
// alive. Sign-ups wait in the outbox; a graceful restart during the alarm
// must exit 0 in time (Stop fails the test otherwise), not when the alarm
// clears; once it clears, nothing is lost.
func TestRabbitMQAlarm(t *testing.T) {
	e := setup(t, envOptions{rabbit: true, latency: smtpLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
	l.awaitAccepted(registrations / 3)
	// The node's own watermark (0.4 before RabbitMQ 4.0, 0.6 after) is
	// put back when the alarm ends.
	watermark := strings.TrimSpace(rabbitctl(t, "eval", "vm_memory_monitor:get_vm_memory_high_watermark()."))
	_, err := strconv.ParseFloat(watermark, 64)
	require.NoError(t, err, "the node's memory watermark is not a fraction: %q", watermark)
	// 0 sets the alarm off at once: "all publishing connections will be
	// blocked" (RabbitMQ's memory documentation).
	rabbitctl(t, "set_vm_memory_high_watermark", "0")
	cleared := false
	clear := func() {
		if !cleared {
			cleared = true
			rabbitctl(t, "set_vm_memory_high_watermark", watermark)
		}
	}
	t.Cleanup(clear)
	time.Sleep(rabbitOutage / 2)
	require.Positive(t, e.svc.logs.Count("RabbitMQ blocked the connection"), "the alarm did not block the service's connection")
	e.svc.Restart()
	time.Sleep(rabbitOutage / 2)
	clear()
	l.finish(fmt.Sprintf("RabbitMQ memory alarm %s, SIGTERM and restart during it (SQLite)", rabbitOutage), time.Now())
}

// TestSMTPOutage takes the mail relay through refusing connections, 421
// at the greeting and 451 at RCPT, then back: every email goes out after
// recovery.
func TestSMTPOutage(t *testing.T) {
	for _, rabbit := range []bool{false, true} {
		name := brokerName(rabbit)
		t.Run(name, func(t *testing.T) {
			e := setup(t, envOptions{rabbit: rabbit, latency: smtpLatency})
			l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
			l.awaitAccepted(registrations / 4)
			for _, m := range []smtpMode{smtpRefuse, smtpGreet421, smtpRcpt451} {
				e.smtp.Set(m)
				time.Sleep(smtpPhase) // the outage itself
			}
			e.smtp.Set(smtpUp)
			l.finish(fmt.Sprintf("SMTP refusing, 421, 451 (%s each), back (%s)", smtpPhase, name), time.Now())
		})
	}
}

// TestSMTP530 has the relay answer 530 (authentication required) to MAIL
// FROM for a few seconds: a problem of the relay or of our settings, not
// of any recipient, so no email may be given up on.
func TestSMTP530(t *testing.T) {
	e := setup(t, envOptions{latency: smtpLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations, drain: sessionErrorDrain})
	l.awaitAccepted(registrations / 4)
	e.smtp.Set(smtpMail530)
	time.Sleep(smtpPhase) // the fault itself
	e.smtp.Set(smtpUp)
	l.finish(fmt.Sprintf("SMTP 530 at MAIL FROM for %s (in-process)", smtpPhase), time.Now())
}

// TestSMTP550 has the relay refuse one address in ten for good: those are
// FAILED (tried once, not retried, not counted lost), the others go out.
func TestSMTP550(t *testing.T) {
	e := setup(t, envOptions{latency: smtpLatency})
	failed0, _ := e.svc.Metric("verifier_emails_failed_total")
	l := startLoad(t, e.svc, e.smtp, loadOptions{
		target: registrations,
		kind: func(i int) addrKind {
			if i%10 == 0 {
				return bounceAddr
			}
			return normalAddr
		},
	})
	r := l.finish("550 for 1 address in 10 (in-process)", time.Time{})
	if failed, err := e.svc.Metric("verifier_emails_failed_total"); err == nil {
		t.Logf("verifier_emails_failed_total rose by %.0f (%s)", failed-failed0, r.Fault)
	}
}

// TestSQLiteLocked has another process hold SQLite's write lock for
// longer than the service's busy timeout: writes fail meanwhile (refused
// sign-ups are fine), and everything accepted goes through afterwards.
func TestSQLiteLocked(t *testing.T) {
	e := setup(t, envOptions{latency: smtpLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
	l.awaitAccepted(registrations / 4)

	db, err := sql.Open("sqlite", "file:"+e.db+"?_pragma=busy_timeout(20000)")
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	// EXCLUSIVE in WAL mode takes the write lock and leaves readers be,
	// as a long migration or a backup tool's write transaction does.
	_, err = conn.ExecContext(ctx, "BEGIN EXCLUSIVE")
	require.NoError(t, err)
	time.Sleep(lockHold) // the fault itself
	_, err = conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	l.finish(fmt.Sprintf("SQLite write lock held %s by another process", lockHold), time.Now())
}

// TestDatabaseReadOnly makes the database files read-only for a few
// seconds: writes fail meanwhile, and the service works again by itself
// once they are writable.
func TestDatabaseReadOnly(t *testing.T) {
	e := setup(t, envOptions{asNobody: true, latency: smtpLatency})
	l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
	// Early, while the service's connection pool is still small: a
	// connection opened while the files are read-only is the case that
	// matters (SQLite then opens it read-only, for good).
	l.awaitAccepted(registrations / 10)

	files := []string{e.dir, e.db, e.db + "-wal", e.db + "-shm"}
	modes := map[string]os.FileMode{}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		modes[f] = fi.Mode().Perm()
		ro := os.FileMode(0o444)
		if fi.IsDir() {
			ro = 0o555
		}
		require.NoError(t, os.Chmod(f, ro))
	}
	probe := probeReady(e.svc)
	refusedBefore := l.refusedCount()
	stopReaders := readers(e.svc, l.journeys[0].watch, readersDuringFault)
	time.Sleep(readOnlyFor) // the fault itself
	stopReaders()
	failedWrites := l.refusedCount() - refusedBefore
	for f, m := range modes {
		require.NoError(t, os.Chmod(f, m))
	}
	// Issue 6, item 11: readiness reports a database that takes no
	// writes, not only one that does not answer a ping.
	// Connections opened before the fault keep their writable handle, so
	// writes through them go on working, and the write probe (which uses
	// one) says so; only a request that needs a new connection fails.
	// Reported, not asserted: the held write lock and PostgreSQL cases
	// assert the 503 (internal/database, startup_test.go).
	var notes []string
	if !probe() && failedWrites > 0 {
		notes = append(notes, fmt.Sprintf("/readyz stayed 200 while %d sign-ups failed on new connections", failedWrites))
	}
	l.finish(fmt.Sprintf("database files read-only %s", readOnlyFor), time.Now(), notes...)
}

// readers keeps n clients reading the status behind watch until the
// returned function is called: waiting screens reloaded by impatient
// people, which make the service open more database connections.
func readers(s *service, watch string, n int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	c := newClient(s.publicURL(), n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := newBackoff()
			for ctx.Err() == nil {
				if err := c.status(ctx, watch); err != nil {
					wait.sleep(ctx)
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait(); c.close() }
}

// probeReady asks /readyz every half second until the returned function
// is called, which reports whether any answer was 503.
func probeReady(s *service) func() bool {
	stop := make(chan struct{})
	var seen bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 3 * time.Second}
		defer c.CloseIdleConnections()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			if resp, err := c.Get(s.publicURL() + "/readyz"); err == nil {
				resp.Body.Close()
				seen = seen || resp.StatusCode == http.StatusServiceUnavailable
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() bool { close(stop); wg.Wait(); return seen }
}

// TestSMTP451Forever has a few addresses that always answer 451 among
// normal sign-ups: they must not hold up anyone else's email.
func TestSMTP451Forever(t *testing.T) {
	for _, rabbit := range []bool{false, true} {
		name := brokerName(rabbit)
		t.Run(name, func(t *testing.T) {
			e := setup(t, envOptions{rabbit: rabbit, latency: smtpLatency})
			c := newClient(e.svc.publicURL(), 1)
			defer c.close()
			stuck := make([]string, stuckAddresses)
			for i := range stuck {
				stuck[i] = fmt.Sprintf("stuck-%d-%d@example.com", time.Now().UnixNano()%1e9, i)
				e.smtp.Defer451(stuck[i])
				_, err := c.register(context.Background(), stuck[i])
				require.NoError(t, err)
			}
			for _, a := range stuck {
				select {
				case <-e.smtp.Attempted(a):
				case <-time.After(triggerDeadline):
					t.Fatalf("the mailer never tried %s", a)
				}
			}
			l := startLoad(t, e.svc, e.smtp, loadOptions{target: registrations})
			r := l.finish(fmt.Sprintf("%d addresses answer 451 forever (%s)", stuckAddresses, name), time.Time{})
			attempts := 0
			for _, a := range stuck {
				attempts += e.smtp.Attempts(a)
			}
			t.Logf("%s: the %d stuck addresses were tried %d times in all", r.Fault, stuckAddresses, attempts)
		})
	}
}

// TestParallelVerify clicks one link 100 times at once: exactly one state
// change (one alreadyVerified=false, one verifiedAt), one event through
// the outbox, one VERIFIED on each open subscription.
func TestParallelVerify(t *testing.T) {
	for _, v := range []struct {
		db     string
		rabbit bool
	}{{"SQLite", false}, {"SQLite", true}, {"PostgreSQL", false}} {
		name := v.db + ", " + brokerName(v.rabbit)
		t.Run(strings.ReplaceAll(name, ", ", "_"), func(t *testing.T) {
			o := envOptions{rabbit: v.rabbit}
			if v.db == "PostgreSQL" {
				// Concurrent transactions really overlap on PostgreSQL;
				// SQLite serialises writers.
				o.databaseURL = databasetest.Postgres(t)
			}
			e := setup(t, o)
			c := newClient(e.svc.publicURL(), parallelVerifies)
			defer c.close()
			ctx, cancel := context.WithTimeout(context.Background(), drainDeadline)
			defer cancel()
			email := fmt.Sprintf("once-%d@example.com", time.Now().UnixNano()%1e9)
			watch, err := c.register(ctx, email)
			require.NoError(t, err)

			// Three open waiting screens (tabs) on the same registration.
			const tabs = 3
			ready := make(chan struct{}, tabs)
			ends := make(chan watchEnd, tabs)
			for range tabs {
				go func() {
					once := sync.Once{}
					end, _ := watchOnce(ctx, e.svc.addr, watch, func() { once.Do(func() { ready <- struct{}{} }) })
					ends <- end
				}()
			}
			for range tabs {
				select {
				case <-ready:
				case <-ctx.Done():
					t.Fatal("subscriptions did not start")
				}
			}
			select {
			case <-e.smtp.Delivered(email):
			case <-ctx.Done():
				t.Fatal("no verification email")
			}
			token := e.smtp.Mails(email)[0].Token
			require.NotEmpty(t, token)
			// The email's SENT record announces itself to the registration's
			// watchers through the outbox (delivery.changed), possibly just
			// after the sink has the mail: counted from here it would pass
			// for a second user.verified.
			testkit.Eventually(t, func() bool {
				n, err := e.svc.Metric("verifier_emails_sent_total")
				return err == nil && n >= 1
			}, "the email recorded SENT")
			published0 := settledPublished(t, e.svc)

			start := make(chan struct{})
			results := make(chan verifyOutcome, parallelVerifies)
			for range parallelVerifies {
				go func() {
					<-start
					res, err := c.verify(ctx, token)
					results <- verifyOutcome{res, err}
				}()
			}
			close(start)
			changes, failures := 0, 0
			verifiedAt := map[time.Time]bool{}
			for range parallelVerifies {
				o := <-results
				if o.err != nil {
					failures++
					t.Logf("verifyEmail: %v", o.err)
					continue
				}
				verifiedAt[o.res.VerifiedAt] = true
				if !o.res.AlreadyVerified {
					changes++
				}
			}
			pushes := 0
			for range tabs {
				if <-ends == watchVerified {
					pushes++
				}
			}
			// One verification is user.verified for the replicas'
			// subscribers and, on RabbitMQ, the public
			// verifier.user.verified.v1 (in-process, with no webhook,
			// nothing could hear it, and none is written).
			eventsPerVerification := 1
			if v.rabbit {
				eventsPerVerification = 2
			}
			events := (settledPublished(t, e.svc) - published0) / eventsPerVerification

			r := row{
				Fault: fmt.Sprintf("%d× verifyEmail, one token (%s)", parallelVerifies, name),
				Tried: parallelVerifies, Delivered: parallelVerifies - failures,
				Duplicated: max(changes-1, 0) + max(events-1, 0), Missed: tabs - pushes, Drain: "—",
				Notes: []string{fmt.Sprintf("%d state change(s), %d distinct verifiedAt, %d event(s), %d of %d tabs got VERIFIED, %d calls failed",
					changes, len(verifiedAt), events, pushes, tabs, failures)},
			}
			r.Result = "PASS"
			if changes != 1 || len(verifiedAt) != 1 || events != 1 || pushes != tabs || failures != 0 {
				r.Result = "FAIL"
			}
			record(r)
			t.Logf("\n%s\n%s", tableHeader, r.markdown())
			require.Zero(t, failures, "every click answers VERIFIED")
			require.Equal(t, 1, changes, "exactly one call changes the state (alreadyVerified false)")
			require.Len(t, verifiedAt, 1, "one verifiedAt for all answers")
			require.Equal(t, 1, events, "one event through the outbox")
			require.Equal(t, tabs, pushes, "every open subscription sees VERIFIED")
		})
	}
}

type verifyOutcome struct {
	res verifyResult
	err error
}

// settledPublished waits until the outbox is empty and returns how many
// events the relay has published since the process started.
func settledPublished(t *testing.T, s *service) int {
	t.Helper()
	deadline := time.After(drainDeadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		backlog, err := s.Metric("verifier_outbox_backlog")
		if err == nil && backlog == 0 {
			n, err := s.Metric("verifier_outbox_published_total")
			require.NoError(t, err)
			return int(n)
		}
		select {
		case <-deadline:
			t.Fatalf("outbox not empty within %s (backlog %v, %v)", drainDeadline, backlog, err)
		case <-tick.C:
		}
	}
}

func brokerName(rabbit bool) string {
	if rabbit {
		return "RabbitMQ"
	}
	return "in-process"
}
