// Package publicevent is what other services hear from verifier: the five
// public event types of the contract, as CloudEvents 1.0 in structured JSON
// mode, on the RabbitMQ exchange verifier.public (routing key = type) and
// POSTed to every webhook endpoint.
//
// A public event travels the house path: Enqueue writes the whole envelope
// into the outbox in the caller's transaction (so nothing is published that
// did not commit, and nothing that committed is lost), the relay publishes
// it, and the broker routes it by its topic, which is its type:
// broker.Public sends every "verifier.…" topic to the public exchange,
// internal topics (user.registered, which carries a sealed token, and the
// rest) stay on verifier.events. The envelope's id is fixed at enqueue and
// is also the outbox event id, the AMQP message id and the webhook-id, so a
// redelivery is recognisably the same event everywhere.
//
// The envelope is written by hand, not with the CloudEvents Go SDK
// (github.com/cloudevents/sdk-go/v2): it is eight fixed attributes and a
// JSON object, the format is stable (1.0), and the SDK would bring
// json-iterator, zap and its own time and data handling into the binary
// for what one struct and encoding/json do. The SDK stays the independent
// check: the tests decode every type with its event package and run
// event.Validate on it.
package publicevent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/internal/outbox"
)

// The types, as the contract names them. Each is also the event's outbox
// topic and its routing key on verifier.public.
const (
	UserRegisteredType = "verifier.user.registered.v1"
	UserVerifiedType   = "verifier.user.verified.v1"
	EmailChangedType   = "verifier.user.email_changed.v1"
	UserDeletedType    = "verifier.user.deleted.v1"
	EmailFailedType    = "verifier.email.failed.v1"
)

// Types is every type the service can publish: the one list the AsyncAPI
// document, the webhook consumer's bindings and the tests are checked
// against.
var Types = []string{UserRegisteredType, UserVerifiedType, EmailChangedType, UserDeletedType, EmailFailedType}

// ContentType is the media type of an envelope on the wire (AMQP
// content-type, webhook Content-Type).
const ContentType = "application/cloudevents+json"

// Event is the data of one public event. No type carries a token, a code
// or a password hash, and none ever may: the tests check every field.
type Event interface {
	// Type is the CloudEvents type.
	Type() string
	// Subject is the user the event is about (CloudEvents subject).
	Subject() uuid.UUID
}

// UserRegistered: a new account (once per user; a superseding
// registration of an unverified address is not a new user).
type UserRegistered struct {
	UserID       uuid.UUID `json:"userId"`
	Email        string    `json:"email"`
	RegisteredAt time.Time `json:"registeredAt"`
}

// UserVerified: the address was confirmed.
type UserVerified struct {
	UserID     uuid.UUID `json:"userId"`
	Email      string    `json:"email"`
	VerifiedAt time.Time `json:"verifiedAt"`
}

// EmailChanged: the user confirmed a new address.
type EmailChanged struct {
	UserID    uuid.UUID `json:"userId"`
	OldEmail  string    `json:"oldEmail"`
	Email     string    `json:"email"`
	ChangedAt time.Time `json:"changedAt"`
}

// UserDeleted: the user and everything about the address were erased; the
// address itself is therefore not in the event.
type UserDeleted struct {
	UserID    uuid.UUID `json:"userId"`
	DeletedAt time.Time `json:"deletedAt"`
}

// EmailFailed: an email to the user was refused for good (its delivery
// record is FAILED). Reason is the mail server's reply in plain words.
type EmailFailed struct {
	UserID   uuid.UUID `json:"userId"`
	Email    string    `json:"email"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failedAt"`
}

// Type implements Event.
func (UserRegistered) Type() string { return UserRegisteredType }

// Type implements Event.
func (UserVerified) Type() string { return UserVerifiedType }

// Type implements Event.
func (EmailChanged) Type() string { return EmailChangedType }

// Type implements Event.
func (UserDeleted) Type() string { return UserDeletedType }

// Type implements Event.
func (EmailFailed) Type() string { return EmailFailedType }

// Subject implements Event.
func (e UserRegistered) Subject() uuid.UUID { return e.UserID }

// Subject implements Event.
func (e UserVerified) Subject() uuid.UUID { return e.UserID }

// Subject implements Event.
func (e EmailChanged) Subject() uuid.UUID { return e.UserID }

// Subject implements Event.
func (e UserDeleted) Subject() uuid.UUID { return e.UserID }

// Subject implements Event.
func (e EmailFailed) Subject() uuid.UUID { return e.UserID }

// Envelope is a public event as other services receive it: CloudEvents
// 1.0, structured mode, JSON.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// DefaultSource is the source of a Writer without one: PUBLIC_URL's default.
const DefaultSource = "http://localhost:8080"

// Writer writes public events into the outbox. Its zero value writes
// every event with DefaultSource as their source. One value, built in
// server.go from the settings, is handed to everything that writes events
// (the account service, the delivery records), so none can disagree about
// the source or whether events go out.
type Writer struct {
	// Source is the envelopes' source: PUBLIC_URL.
	Source string
	// Unheard drops every event instead of writing it: set when nothing
	// could receive one, which is the in-process broker with no webhook
	// endpoint (no other service shares a process's broker). Writing,
	// relaying and dropping them cost a verification about 40 % of its
	// throughput on the single SQLite writer (BENCHMARKS.md).
	Unheard bool
}

// Encode returns ev's envelope, with id and time, as JSON.
func (w Writer) Encode(id uuid.UUID, now time.Time, ev Event) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("publicevent: encode %s: %w", ev.Type(), err)
	}
	return json.Marshal(Envelope{
		SpecVersion:     "1.0",
		ID:              id.String(),
		Source:          cmp.Or(w.Source, DefaultSource),
		Type:            ev.Type(),
		Subject:         ev.Subject().String(),
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            data,
	})
}

// Enqueue writes ev, as its CloudEvents envelope with a new id, into the
// outbox in tx: it is published only if tx commits, and then at least
// once. The caller wakes the relay after the commit, as for any event.
func (w Writer) Enqueue(ctx context.Context, tx *ent.Tx, now time.Time, ev Event) error {
	if w.Unheard {
		return nil
	}
	id := uuid.New()
	body, err := w.Encode(id, now, ev)
	if err != nil {
		return err
	}
	return outbox.EnqueueRaw(ctx, tx, now, id, ev.Type(), body)
}
