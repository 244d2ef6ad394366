// Package status owns the one type a verification status change has on its
// way from the account service through the broker and the hub to a
// subscriber's websocket. GraphQL binds its enum and event types to these
// (gqlgen.yml), so no layer converts one shape into another.
package status

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Status is whether an address has been confirmed by its owner.
type Status string

// The statuses of the contract's VerificationStatus enum.
const (
	Unverified Status = "UNVERIFIED"
	Verified   Status = "VERIFIED"
)

// DeliveryState is what happened so far to a registration's latest email.
type DeliveryState string

// The states of the contract's DeliveryState enum.
const (
	// Queued: the email is waiting to be sent.
	Queued DeliveryState = "QUEUED"
	// Sent: the mail server accepted it.
	Sent DeliveryState = "SENT"
	// Deferred: a temporary failure; it is being retried.
	Deferred DeliveryState = "DEFERRED"
	// Failed: refused for good, e.g. the mailbox does not exist.
	Failed DeliveryState = "FAILED"
)

// Delivery is the state of a registration's latest email.
type Delivery struct {
	State DeliveryState `json:"state"`
	At    time.Time     `json:"at"`
	// Attempts made so far.
	Attempts int `json:"attempts"`
	// For Deferred and Failed: the mail server's reply in plain words,
	// without internal detail.
	Reason *string `json:"reason,omitempty"`
	// Email orders a registration's emails: its delivery record's id, so
	// a later email's is larger (0: not known, as for the QUEUED shown
	// before any record exists). Not in the API.
	Email int `json:"email,omitempty"`
}

// After reports whether d is a later state of an email than o (nil: none
// known yet). Delivery changes can arrive out of order (consumers handle
// messages concurrently), so a watcher keeps the latest by this order:
// the later email, then time, then attempts, then how far along the state
// is. The email comes first because two emails' changes carry the clocks
// of two transactions: an earlier email's SENT can be stamped after a
// resend's QUEUED when both commit at once (on PostgreSQL neither sees
// the other's row), and must not pass for the resend's.
func (d *Delivery) After(o *Delivery) bool {
	switch {
	case o == nil:
		return true
	case d.Email != 0 && o.Email != 0 && d.Email != o.Email:
		return d.Email > o.Email
	case !d.At.Equal(o.At):
		return d.At.After(o.At)
	case d.Attempts != o.Attempts:
		return d.Attempts > o.Attempts
	}
	return d.State.rank() > o.State.rank()
}

// rank orders states by how far along an email is.
func (d DeliveryState) rank() int {
	switch d {
	case Deferred:
		return 1
	case Sent, Failed:
		return 2
	}
	return 0
}

// Change is one event a watcher of a registration receives: the status,
// when it took effect, and, for watchers that asked for it, the latest
// email's delivery.
type Change struct {
	Status   Status
	At       time.Time
	Delivery *Delivery
	// Sign is set on the VERIFIED snapshot of a registration's own watch
	// token: it mints that watcher's receipt, a signed proof for the app
	// (Receipt). A signature each call, so GraphQL makes it only for a
	// client that selected the field.
	Sign func(context.Context) (*string, error)
	// RedirectTo is the registration's redirectTo, set with Sign.
	RedirectTo *string
}

// Receipt is the event's receipt: minted now, nil when none is due, an
// error when one is due and cannot be signed (the event still carries
// its status; GraphQL reports the field's error beside it).
func (c *Change) Receipt(ctx context.Context) (*string, error) {
	if c.Sign == nil {
		return nil, nil
	}
	return c.Sign(ctx)
}

// MarshalGQL writes s as a GraphQL enum value.
func (s Status) MarshalGQL(w io.Writer) { writeEnum(w, string(s)) }

// UnmarshalGQL reads a VerificationStatus enum value.
func (s *Status) UnmarshalGQL(v any) error {
	str, ok := v.(string)
	if !ok || (Status(str) != Unverified && Status(str) != Verified) {
		return fmt.Errorf("not a VerificationStatus: %v", v)
	}
	*s = Status(str)
	return nil
}

// MarshalGQL writes d as a GraphQL enum value.
func (d DeliveryState) MarshalGQL(w io.Writer) { writeEnum(w, string(d)) }

// UnmarshalGQL reads a DeliveryState enum value.
func (d *DeliveryState) UnmarshalGQL(v any) error {
	str, ok := v.(string)
	switch DeliveryState(str) {
	case Queued, Sent, Deferred, Failed:
		if ok {
			*d = DeliveryState(str)
			return nil
		}
	}
	return fmt.Errorf("not a DeliveryState: %v", v)
}

// writeEnum writes an enum value as the JSON string GraphQL responses carry.
// The values are fixed upper-case identifiers: nothing to escape.
func writeEnum(w io.Writer, v string) {
	_, _ = io.WriteString(w, strconv.Quote(v))
}
