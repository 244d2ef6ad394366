package mail

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/verifier/verifier/ent"
	"github.com/verifier/verifier/ent/devmail"
)

// DevOutbox keeps mail in the database instead of sending it (SMTP_URL
// empty), for /dev/mail. It logs each message without its body: the body
// holds a live verification link, and tokens never go to logs.
type DevOutbox struct {
	db      *ent.Client
	log     *slog.Logger
	viewURL string
	now     func() time.Time
}

// NewDevOutbox returns a dev outbox whose mail is listed at viewURL.
func NewDevOutbox(db *ent.Client, log *slog.Logger, viewURL string) *DevOutbox {
	return &DevOutbox{db: db, log: log, viewURL: viewURL, now: time.Now}
}

// Send keeps m. A redelivered message (same ID) is kept once.
func (d *DevOutbox) Send(ctx context.Context, m Message) error {
	err := d.db.DevMail.Create().
		SetMessageID(m.ID).
		SetTo(m.To).
		SetSubject(m.Subject).
		SetText(m.Text).
		SetHTML(m.HTML).
		SetCreatedAt(d.now().UTC()).
		OnConflictColumns(devmail.FieldMessageID).
		DoNothing().
		Exec(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("dev outbox: %w", err)
	}
	d.log.Info("mail kept in the dev outbox", "to", m.To, "subject", m.Subject, "open", d.viewURL)
	return nil
}

// List returns the newest n messages, newest first.
func (d *DevOutbox) List(ctx context.Context, n int) ([]*ent.DevMail, error) {
	return d.db.DevMail.Query().Order(ent.Desc(devmail.FieldID)).Limit(n).All(ctx)
}

var _ Sender = (*DevOutbox)(nil)

// Trim keeps the newest keep messages and deletes the rest.
func (d *DevOutbox) Trim(ctx context.Context, keep int) (int, error) {
	ids, err := d.db.DevMail.Query().Order(ent.Desc(devmail.FieldID)).Offset(keep).IDs(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	return d.db.DevMail.Delete().Where(devmail.IDIn(ids...)).Exec(ctx)
}
