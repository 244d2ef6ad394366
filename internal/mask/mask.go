// Package mask shows an email address without giving it away, for the
// places that must point at one without holding it: the change-of-address
// notice to the old address, and log lines (nothing a client sent is
// logged as sent).
package mask

import "strings"

// Email is addr as its first character, an ellipsis and the domain
// (n…@example.com); "…" for what is no address.
func Email(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 {
		return "…"
	}
	first := []rune(addr[:at])[0]
	return string(first) + "…" + addr[at:]
}
