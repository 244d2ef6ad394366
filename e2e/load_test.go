//go:build faults

package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Deadlines of the suite. None is a performance assertion: each only keeps
// a scenario from hanging, and is generous for a loaded 2-core CI machine.
const (
	// drainDeadline is how long after the fault ends (and the load is
	// in) every email, verification and push may take before what is
	// missing counts as lost or missed. The service's own retry backoff
	// tops out at 30 s, so this leaves room for one full backoff and more.
	drainDeadline = 60 * time.Second
	// triggerDeadline bounds the wait for the load to reach the point
	// where a scenario injects its fault.
	triggerDeadline = 90 * time.Second
	// workers is the number of concurrent clients signing up.
	workers = 6
	// thinkMin and thinkMax bound how long a simulated person takes
	// between the email's arrival and the click. People take seconds;
	// this keeps dozens of subscriptions open when a fault lands.
	thinkMin, thinkMax = 1 * time.Second, 3 * time.Second
)

// addrKind is what the fault SMTP server will do with an address.
type addrKind int

const (
	normalAddr addrKind = iota
	bounceAddr          // answered 550: expected FAILED, never delivered
)

// journey is one simulated person: sign up, keep the waiting screen's
// subscription open, get the email, click, see VERIFIED.
type journey struct {
	email string
	watch string
	kind  addrKind

	mu         sync.Mutex
	subscribed bool // an UNVERIFIED event arrived at least once
	pushed     bool // VERIFIED arrived
	completed  bool // completed without VERIFIED (a standard client stops)
	reconnects int
	watchErr   error
	bounced    bool // the 550 address was tried by the mailer
	verifyOK   bool
	verifyErr  error
}

// load is a bounded, steady sign-up load with open subscriptions.
type load struct {
	t      *testing.T
	svc    *service
	smtp   *faultSMTP
	c      *client
	prefix string
	target int
	kind   func(i int) addrKind
	drain  time.Duration

	next     atomic.Int64
	accepted atomic.Int64

	mu         sync.Mutex
	journeys   []*journey
	refused    map[string]int // register failures by code
	dupBound   int            // loadOptions.crashDupBound
	events     *eventAudit    // loadOptions.events
	thresholds map[int]chan struct{}

	workersDone chan struct{}
	stopWorkers context.CancelFunc
	jctx        context.Context // ends every journey at the drain deadline
	endJourneys context.CancelFunc
	jwg         sync.WaitGroup

	problems []string // other failed expectations of the scenario
}

// problem records a failed expectation of the scenario besides the table's
// own; finish reports it and fails the test.
func (l *load) problem(msg string) { l.problems = append(l.problems, msg) }

type loadOptions struct {
	target int
	// kind marks some addresses for the SMTP server; nil: all normal.
	kind func(i int) addrKind
	// drain replaces drainDeadline for a fault the service is meant to
	// answer with a longer backoff.
	drain time.Duration
	// crashDupBound, when set, replaces the 0.1 % bound on duplicates by
	// this count: a crash can duplicate only the emails in flight at that
	// instant (at most SMTP_CONNECTIONS per crash), and the delivery
	// record must keep it to those, whatever the outbox and the broker
	// hand out again after the restart.
	crashDupBound int
	// events, when set, is a queue on the public exchange bound before
	// the load: finish counts a registered and a verified event per
	// journey in it, lost and duplicated.
	events *eventAudit
}

// startLoad starts workers clients signing up until target registrations
// were accepted. A refused registration is not retried with the same
// address (a person would, but then one address would get two emails for
// reasons that are not a fault); the worker takes the next one.
func startLoad(t *testing.T, svc *service, smtp *faultSMTP, o loadOptions) *load {
	t.Helper()
	l := &load{
		t: t, svc: svc, smtp: smtp, c: newClient(svc.publicURL(), workers*2),
		prefix:      fmt.Sprintf("f%d", time.Now().UnixNano()%1e9),
		target:      o.target,
		kind:        o.kind,
		drain:       cmp.Or(o.drain, drainDeadline),
		dupBound:    o.crashDupBound,
		events:      o.events,
		refused:     map[string]int{},
		thresholds:  map[int]chan struct{}{},
		workersDone: make(chan struct{}),
	}
	if l.kind == nil {
		l.kind = func(int) addrKind { return normalAddr }
	}
	var wctx context.Context
	wctx, l.stopWorkers = context.WithCancel(context.Background())
	l.jctx, l.endJourneys = context.WithCancel(context.Background())
	t.Cleanup(func() {
		l.stopWorkers()
		<-l.workersDone
		l.endJourneys()
		l.jwg.Wait()
		l.c.close()
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); l.work(wctx) }()
	}
	go func() { wg.Wait(); close(l.workersDone) }()
	return l
}

// Accepted is closed once n registrations were accepted.
func (l *load) Accepted(n int) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.thresholds[n]
	if !ok {
		c = make(chan struct{})
		l.thresholds[n] = c
		if int(l.accepted.Load()) >= n {
			close(c)
		}
	}
	return c
}

// awaitAccepted waits until n registrations were accepted, failing the
// test if the load stalls first.
func (l *load) awaitAccepted(n int) {
	l.t.Helper()
	select {
	case <-l.Accepted(n):
	case <-time.After(triggerDeadline):
		l.t.Fatalf("load stalled: %d of %d registrations accepted in %s", l.accepted.Load(), n, triggerDeadline)
	}
}

func (l *load) work(ctx context.Context) {
	wait := newBackoff()
	for ctx.Err() == nil && int(l.accepted.Load()) < l.target {
		i := int(l.next.Add(1))
		email := fmt.Sprintf("%s-%04d@example.com", l.prefix, i)
		kind := l.kind(i)
		if kind == bounceAddr {
			l.smtp.Refuse550(email)
		}
		watch, err := l.c.register(ctx, email)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.refuse(err)
			wait.sleep(ctx)
			continue
		}
		wait.reset()
		j := &journey{email: email, watch: watch, kind: kind}
		l.mu.Lock()
		l.journeys = append(l.journeys, j)
		n := int(l.accepted.Add(1))
		for k, c := range l.thresholds {
			if n >= k {
				select {
				case <-c:
				default:
					close(c)
				}
			}
		}
		l.mu.Unlock()
		l.jwg.Add(1)
		go func() { defer l.jwg.Done(); l.run(j) }()
	}
}

func (l *load) refuse(err error) {
	code := "no answer"
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.Code
	}
	l.mu.Lock()
	l.refused[code]++
	l.mu.Unlock()
}

// run plays one person's journey until VERIFIED is seen or the drain
// deadline ends it.
func (l *load) run(j *journey) {
	ctx, cancel := context.WithCancel(l.jctx)
	defer cancel()
	watched := make(chan struct{})
	go func() { defer close(watched); l.watch(ctx, j) }()

	if j.kind == bounceAddr {
		select {
		case <-l.smtp.Attempted(j.email):
			j.mu.Lock()
			j.bounced = true
			j.mu.Unlock()
		case <-ctx.Done():
		}
		cancel()
		<-watched
		return
	}
	select {
	case <-l.smtp.Delivered(j.email):
	case <-ctx.Done():
		<-watched
		return
	}
	think := time.NewTimer(thinkMin + rand.N(thinkMax-thinkMin))
	select {
	case <-think.C:
	case <-ctx.Done():
		think.Stop()
	}
	token := l.smtp.Mails(j.email)[0].Token
	if token == "" {
		j.mu.Lock()
		j.verifyErr = errors.New("no verification link in the email")
		j.mu.Unlock()
		cancel()
		<-watched
		return
	}
	wait := newBackoff()
	for {
		_, err := l.c.verify(ctx, token)
		if err == nil {
			j.mu.Lock()
			j.verifyOK, j.verifyErr = true, nil
			j.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			break // keep the last answer the service gave
		}
		j.mu.Lock()
		j.verifyErr = err
		j.mu.Unlock()
		if !retryable(err) {
			cancel()
			break
		}
		wait.sleep(ctx)
	}
	<-watched
}

// watch keeps the waiting screen's subscription open: after a dropped
// socket or an error result it re-subscribes with the same watchToken, as
// a client library with retries on does. A completion without VERIFIED
// ends it: graphql-ws and Apollo stop there.
func (l *load) watch(ctx context.Context, j *journey) {
	wait := newBackoff()
	for ctx.Err() == nil {
		end, err := watchOnce(ctx, l.svc.addr, j.watch, func() {
			j.mu.Lock()
			j.subscribed = true
			j.mu.Unlock()
			wait.reset()
		})
		j.mu.Lock()
		switch end {
		case watchVerified:
			j.pushed = true
			j.mu.Unlock()
			return
		case watchCompleted:
			j.completed, j.watchErr = true, err
			j.mu.Unlock()
			return
		case watchInvalid:
			j.watchErr = err
			j.mu.Unlock()
			return
		}
		if ctx.Err() == nil {
			j.reconnects++
			j.watchErr = err
		}
		j.mu.Unlock()
		wait.sleep(ctx)
	}
}

// backoff spaces a client's retries: 100 ms doubling to 2 s, with jitter,
// as client libraries do so a recovering server is not stampeded.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 100 * time.Millisecond} }

func (b *backoff) reset() { b.next = 100 * time.Millisecond }

func (b *backoff) sleep(ctx context.Context) {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(2*b.next, 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// finish waits for the load to be in and every journey to end, at most
// the drain deadline after recovered (the instant the fault ended; zero: now),
// then counts, records the table row and asserts the targets.
func (l *load) finish(fault string, recovered time.Time, notes ...string) row {
	l.t.Helper()
	noFault := recovered.IsZero()
	if noFault {
		recovered = time.Now()
	}
	// The load must be in, and every journey over, within the drain
	// deadline after recovery; a load that is in late still gives its
	// last sign-ups the whole deadline.
	deadline := recovered.Add(l.drain)
	stalled := false
	select {
	case <-l.workersDone:
		deadline = later(deadline, time.Now().Add(l.drain))
	case <-time.After(time.Until(deadline)):
		stalled = true
		l.stopWorkers()
		<-l.workersDone
	}
	all := make(chan struct{})
	go func() { l.jwg.Wait(); close(all) }()
	timedOut := false
	select {
	case <-all:
	case <-time.After(time.Until(deadline)):
		timedOut = true
		l.endJourneys()
		<-all
	}

	r, stuck := l.tally(fault, recovered)
	if l.events != nil {
		l.countEvents(&r, deadline)
	}
	switch {
	case stalled:
		r.Drain = "—"
	case noFault:
		r.Drain = "n/a"
	}
	r.Notes = append(r.Notes, notes...)
	if stalled {
		r.Notes = append(r.Notes, fmt.Sprintf("load stalled: %d of %d accepted %s after recovery", len(l.journeys), l.target, l.drain))
	}
	if timedOut {
		r.Notes = append(r.Notes, fmt.Sprintf("not settled %s after recovery", l.drain))
	}
	r.Notes = append(r.Notes, l.problems...)
	dupOK := dupRate(r) <= maxDupRate || (l.dupBound > 0 && r.Duplicated <= l.dupBound)
	ok := len(l.problems) == 0 && !stalled && r.Lost == 0 && r.Missed == 0 && dupOK && stuck == 0
	r.Result = "PASS"
	if !ok {
		r.Result = "FAIL"
	}
	record(r)
	l.t.Logf("\n%s\n%s", tableHeader, r.markdown())

	for _, p := range l.problems {
		l.t.Error(p)
	}
	if stalled {
		l.t.Errorf("load stalled: %d of %d registrations accepted %s after recovery", len(l.journeys), l.target, l.drain)
	}
	if r.Lost != 0 {
		l.t.Errorf("%d of %d accepted registrations never got their email (%s after recovery)", r.Lost, r.Tried, l.drain)
	}
	if r.Missed != 0 {
		l.t.Errorf("%d verified registrations never saw VERIFIED on their subscription", r.Missed)
	}
	switch {
	case dupOK:
	case l.dupBound > 0:
		l.t.Errorf("%d duplicate emails after the crashes: more than the %d that could have been in flight", r.Duplicated, l.dupBound)
	default:
		l.t.Errorf("%d duplicate emails for %d delivered: over %.1f %%", r.Duplicated, r.Delivered, 100*maxDupRate)
	}
	if stuck != 0 {
		l.t.Errorf("%d emailed registrations could not be verified by the deadline", stuck)
	}
	return r
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// maxDupRate is the bound on duplicate emails: under 0.1 %.
const maxDupRate = 0.001

func dupRate(r row) float64 {
	if r.Delivered == 0 {
		return 0
	}
	return float64(r.Duplicated) / float64(r.Delivered)
}

// tally counts the row's figures from what the SMTP server received and
// what each simulated client saw.
// It also returns how many emailed registrations never verified.
func (l *load) tally(fault string, recovered time.Time) (row, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := row{Fault: fault, Tried: len(l.journeys)}
	mails := l.smtp.AllMails()
	mine := map[string]bool{}
	var last time.Time
	var bounced, bounceAttempts, bounceDelivered, completed, invalid, unsubscribed, reconnected, stuck, rfc1047 int
	var stuckErrs []string
	for _, j := range l.journeys {
		mine[j.email] = true
		got := mails[j.email]
		dup, unavoidable := duplicates(got)
		if dup+unavoidable > 0 && os.Getenv("FAULTS_VERBOSE") != "" {
			// To find each copy in the service's log (FAULTS_LOGDIR).
			for _, m := range got {
				l.t.Logf("copies of %s: %s at %s, answered %s (unanswered %v, peer gone %v)", j.email, m.MessageID, m.At.UTC().Format(time.RFC3339Nano), m.Answered.UTC().Format(time.RFC3339Nano), m.Unanswered, m.PeerGone)
			}
		}
		r.Duplicated += dup
		rfc1047 += unavoidable
		j.mu.Lock()
		switch j.kind {
		case bounceAddr:
			if j.bounced || len(got) > 0 {
				bounced++
			} else {
				r.Lost++
			}
			bounceAttempts = max(bounceAttempts, l.smtp.Attempts(j.email))
			bounceDelivered += len(got)
		default:
			if len(got) == 0 {
				r.Lost++
				break
			}
			r.Delivered++
			if got[0].At.After(last) {
				last = got[0].At
			}
			if j.verifyOK && !j.pushed {
				r.Missed++
				if j.completed {
					completed++
				}
				if j.watchErr != nil && !j.completed {
					invalid++
				}
			}
			if !j.verifyOK {
				stuck++
				if j.verifyErr != nil && len(stuckErrs) < 2 {
					stuckErrs = append(stuckErrs, j.verifyErr.Error())
				}
			}
		}
		if !j.subscribed && !j.pushed {
			unsubscribed++
		}
		if j.reconnects > 0 {
			reconnected++
		}
		j.mu.Unlock()
	}
	ghosts := 0
	for a, m := range mails {
		// Only this load's addresses: another load may share the server.
		if !mine[a] && strings.HasPrefix(a, l.prefix+"-") {
			ghosts += len(m)
		}
	}
	r.Drain = "—"
	if r.Lost == 0 && r.Delivered > 0 && stuck == 0 {
		d := max(last.Sub(recovered), 0)
		r.Drain = d.Round(100 * time.Millisecond).String()
	}
	if n := sum(l.refused); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d sign-ups refused (%s)", n, counts(l.refused)))
	}
	if bounced+bounceDelivered > 0 || bounceAttempts > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d addresses answered 550 (expected FAILED, at most %d RCPT each)", bounced, bounceAttempts))
	}
	for _, c := range []struct {
		n    int
		note string // a format with one %d, for n
	}{
		{bounceDelivered, "%d mails delivered to 550 addresses"},
		{ghosts, "%d mails for sign-ups whose answer was lost"},
		{reconnected, "%d subscriptions reconnected"},
		{rfc1047, "%d more copies of mails whose sender was killed before the server's 250 (RFC 1047: no client can avoid these)"},
		{completed, "%d completed without VERIFIED"},
		{invalid, "%d subscriptions ended in an error"},
	} {
		if c.n > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf(c.note, c.n))
		}
	}
	if stuck > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d emailed but never verified (%s)", stuck, strings.Join(stuckErrs, " / ")))
	}
	return r, stuck
}

// duplicates counts the extra copies among one address's mails: a mail
// whose Message-ID or token was seen before. A copy of a mail whose
// sender never heard the server's "250" (killed while the server worked)
// is counted apart, as unavoidable: the sender could not know it had
// been accepted (RFC 1047).
func duplicates(ms []received) (avoidable, unavoidable int) {
	type seen struct{ answered bool }
	ids, toks := map[string]*seen{}, map[string]*seen{}
	for _, m := range ms {
		prev := ids[m.MessageID]
		if prev == nil && m.Token != "" {
			prev = toks[m.Token]
		}
		if m.MessageID == "" && m.Token == "" {
			prev = nil
		}
		switch {
		case prev == nil:
			s := &seen{answered: !m.Unanswered}
			ids[m.MessageID], toks[m.Token] = s, s
			continue
		case prev.answered:
			avoidable++
		default:
			unavoidable++
		}
		if !m.Unanswered {
			prev.answered = true
		}
	}
	return avoidable, unavoidable
}

// refusedCount is how many sign-ups were refused so far.
func (l *load) refusedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sum(l.refused)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}
