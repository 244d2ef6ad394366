package mail

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/verifier/verifier/internal/delivery"
	"github.com/verifier/verifier/internal/mask"
)

// DevOutbox keeps mail on its delivery record instead of sending it
// (SMTP_URL empty), for /dev/mail: the dev mailbox is a view of the
// records, so it shows what the mailer did as well as what it wrote. It
// logs each message without its body (the body holds a live verification
// link, and tokens never go to logs) and with its address masked
// (mask.Email): the full address and the mail are at /dev/mail.
type DevOutbox struct {
	records *delivery.Store
	log     *slog.Logger
	viewURL string
}

// NewDevOutbox returns a dev outbox keeping mail on records, listed at
// viewURL.
func NewDevOutbox(records *delivery.Store, log *slog.Logger, viewURL string) *DevOutbox {
	return &DevOutbox{records: records, log: log, viewURL: viewURL}
}

// Send keeps m on the record of its event (the mailer writes the record
// before sending). A redelivered message is kept once.
func (d *DevOutbox) Send(ctx context.Context, m Message) error {
	if err := d.records.KeepCopy(ctx, m.ID, m.Subject, m.Text, m.HTML); err != nil {
		return fmt.Errorf("dev outbox: %w", err)
	}
	d.log.Info("mail kept in the dev outbox", "to", mask.Email(m.To), "subject", m.Subject, "open", d.viewURL)
	return nil
}

// List returns the newest n messages, newest first.
func (d *DevOutbox) List(ctx context.Context, n int) ([]delivery.Copy, error) {
	return d.records.Copies(ctx, n)
}

var _ Sender = (*DevOutbox)(nil)

// Trim keeps the newest keep messages and drops the rest (their records
// stay).
func (d *DevOutbox) Trim(ctx context.Context, keep int) (int, error) {
	return d.records.TrimCopies(ctx, keep)
}
