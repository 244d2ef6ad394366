//go:build faults

package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// publicExchange is the contract's exchange of public events, as the
// deployed binary (no test prefix) declares it.
const publicExchange = "verifier.public"

// eventAudit is another service's durable queue on the deployment's
// public exchange: it records which facts were published for which
// address, and under which event ids, so a crash between an outbox
// COMMIT and the publish shows as a missing event.
type eventAudit struct {
	conn *amqp.Connection
	done chan struct{}
	got  chan struct{} // a message was recorded (buffered 1)

	mu sync.Mutex
	// ids[type][email] is the set of event ids seen for that fact.
	ids         map[string]map[string]map[string]bool
	redelivered int
	bad         []string
}

// bindEventAudit binds a durable queue to the public exchange of the
// deployment at amqpURL and consumes it until the test ends. Bind it
// before the load: only what is routed after the binding is counted.
func bindEventAudit(t *testing.T, amqpURL string) *eventAudit {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	require.NoError(t, err)
	ch, err := conn.Channel()
	require.NoError(t, err)
	require.NoError(t, ch.ExchangeDeclare(publicExchange, amqp.ExchangeTopic, true, false, false, false, nil))
	q, err := ch.QueueDeclare("faults.public-audit", true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(q.Name, "verifier.user.#", publicExchange, false, nil))
	deliveries, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	require.NoError(t, err)
	a := &eventAudit{conn: conn, done: make(chan struct{}), got: make(chan struct{}, 1), ids: map[string]map[string]map[string]bool{}}
	go func() {
		defer close(a.done)
		for d := range deliveries {
			a.record(d)
			_ = d.Ack(false) // after recording: a lost consumer would see it again
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-a.done
	})
	return a
}

func (a *eventAudit) record(d amqp.Delivery) {
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Email string `json:"email"`
		} `json:"data"`
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := json.Unmarshal(d.Body, &ev); err != nil || ev.ID == "" || ev.Data.Email == "" {
		a.bad = append(a.bad, fmt.Sprintf("%s: %.200s", d.RoutingKey, d.Body))
	} else {
		byEmail := a.ids[ev.Type]
		if byEmail == nil {
			byEmail = map[string]map[string]bool{}
			a.ids[ev.Type] = byEmail
		}
		if byEmail[ev.Data.Email] == nil {
			byEmail[ev.Data.Email] = map[string]bool{}
		}
		if byEmail[ev.Data.Email][ev.ID] {
			a.redelivered++
		}
		byEmail[ev.Data.Email][ev.ID] = true
	}
	select {
	case a.got <- struct{}{}:
	default:
	}
}

// fact is one event a journey must have caused.
type fact struct{ typ, email string }

// eventCount is what the audit found for the expected facts.
type eventCount struct {
	expected, lost, duplicated, redelivered int
	bad                                     []string
}

// count waits until every fact was seen or deadline passes, then counts:
// lost = facts without an event, duplicated = extra event ids for one
// fact (the same id again is a redelivery, which consumers dedupe).
func (a *eventAudit) count(facts []fact, deadline time.Time) eventCount {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		c := a.tally(facts)
		if c.lost == 0 {
			return c
		}
		select {
		case <-a.got:
		case <-timer.C:
			return a.tally(facts)
		}
	}
}

func (a *eventAudit) tally(facts []fact) eventCount {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := eventCount{expected: len(facts), redelivered: a.redelivered, bad: a.bad}
	for _, f := range facts {
		n := len(a.ids[f.typ][f.email])
		if n == 0 {
			c.lost++
		} else {
			c.duplicated += n - 1
		}
	}
	return c
}

// publicFacts are the public events the load's journeys must have caused:
// registered for every accepted registration, verified for every
// successful click.
func (l *load) publicFacts() []fact {
	l.mu.Lock()
	defer l.mu.Unlock()
	var facts []fact
	for _, j := range l.journeys {
		facts = append(facts, fact{"verifier.user.registered.v1", j.email})
		j.mu.Lock()
		if j.verifyOK {
			facts = append(facts, fact{"verifier.user.verified.v1", j.email})
		}
		j.mu.Unlock()
	}
	return facts
}

// countEvents waits for the journeys' public events until deadline and
// adds the count to r's notes; a lost or duplicated event is a problem of
// the scenario. The journeys are over: their facts are final.
func (l *load) countEvents(r *row, deadline time.Time) {
	c := l.events.count(l.publicFacts(), deadline)
	r.Notes = append(r.Notes, fmt.Sprintf("public events: %d expected (registered + verified), %d lost, %d duplicated, %d redelivered",
		c.expected, c.lost, c.duplicated, c.redelivered))
	if c.lost > 0 {
		l.problem(fmt.Sprintf("%d of %d public events never published (%s after recovery)", c.lost, c.expected, l.drain))
	}
	if c.duplicated > 0 {
		l.problem(fmt.Sprintf("%d public events published again under another id", c.duplicated))
	}
	for _, b := range c.bad {
		l.problem("a public event without id or email: " + b)
	}
}

// unpublishedPublic counts the public events committed to the outbox and
// not yet confirmed by the broker: after a SIGKILL, those the crash
// caught between COMMIT and publish (the relay deletes a row only once
// the broker confirmed it).
func (e *env) unpublishedPublic() int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.db+"?_pragma=busy_timeout(20000)")
	require.NoError(e.t, err)
	defer db.Close()
	var n int
	require.NoError(e.t, db.QueryRow(`SELECT count(*) FROM outbox_events WHERE topic LIKE 'verifier.%'`).Scan(&n))
	return n
}
