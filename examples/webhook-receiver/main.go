// Command webhook-receiver is the README's worked example: an endpoint for
// verifier's webhooks that checks the Standard Webhooks signature before
// it believes anything. Run it with WEBHOOK_SECRET (the service's) and
// ADDR; point the service's WEBHOOK_URL at http://ADDR/hook.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	wh, err := standardwebhooks.NewWebhook(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		log.Fatal("WEBHOOK_SECRET: ", err)
	}
	http.HandleFunc("POST /hook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		// Verify checks the signature and that the timestamp is recent.
		if err != nil || wh.Verify(body, r.Header) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev struct{ ID, Type, Subject string } // CloudEvents; dedupe by ID
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		fmt.Println(ev.Type, ev.Subject)
		w.WriteHeader(http.StatusNoContent) // any 2xx: delivered, not sent again
	})
	ln, err := net.Listen("tcp", env("ADDR", "127.0.0.1:9000"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
