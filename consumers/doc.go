// Package consumers holds the broker consumers, the second half of the
// service's one data path:
//
//	resolver → ent transaction + outbox row → relay → broker → consumers
//	                                                    ├─ Mailer   → SMTP / dev outbox
//	                                                    └─ Notifier → hub → websocket subscriptions
//
// Each consumer is a broker.Handler plus the broker.Queue it listens on.
package consumers
