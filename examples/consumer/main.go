// Command consumer is the README's worked example: another service that
// keeps a local "verified" flag per user from verifier's public events on
// RabbitMQ. Run it with AMQP_URL (and EXCHANGE, QUEUE to change names).
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	conn, err := amqp.Dial(env("AMQP_URL", "amqp://guest:guest@localhost:5672/"))
	if err != nil {
		log.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	// A durable queue of our own: events wait in it while we are down.
	q, err := ch.QueueDeclare(env("QUEUE", "crm.verifier"), true, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"verifier.user.verified.v1", "verifier.user.deleted.v1"} {
		if err := ch.QueueBind(q.Name, key, env("EXCHANGE", "verifier.public"), false, nil); err != nil {
			log.Fatal(err)
		}
	}
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("waiting for events on", q.Name)
	verified := map[string]bool{} // user id → verified; a table in a real service
	for m := range msgs {
		var ev struct{ ID, Type, Subject string } // CloudEvents; dedupe by ID
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			_ = m.Reject(false)
			continue
		}
		switch ev.Type {
		case "verifier.user.verified.v1":
			verified[ev.Subject] = true
		case "verifier.user.deleted.v1":
			delete(verified, ev.Subject)
		}
		fmt.Println(ev.Type, ev.Subject, "verified:", verified[ev.Subject])
		_ = m.Ack(false)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
