package account

import (
	"strings"

	"golang.org/x/net/idna"
)

// dotlessDomains are the mail domains known to ignore dots in the local
// part, each mapped to the domain of the same inboxes. Kept to the one
// provider that documents it: a longer list guessed from the outside would
// merge inboxes that are in fact distinct.
var dotlessDomains = map[string]string{
	"gmail.com":      "gmail.com",
	"googlemail.com": "gmail.com", // the same inboxes under Google's old name
}

// CanonicalEmail names the inbox behind a normalized address (see
// NormalizeEmail), for limits that must hold per inbox rather than per
// spelling: failed sign-ins. (The email cooldown is per address, as the
// contract has it; see lockCooldown.) It lower-cases, drops a "+tag" from the
// local part, and for dotlessDomains drops the dots of the local part and
// uses the provider's main domain. The address stored and
// mailed stays as typed; this form is only a key.
//
// A valid address maps to a valid address, and CanonicalEmail of its own
// result returns it unchanged. Anything else is returned lower-cased.
func CanonicalEmail(addr string) string {
	addr = strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 1 {
		return addr
	}
	local, domain := addr[:at], addr[at+1:]
	if tag := strings.IndexByte(local, '+'); tag > 0 {
		local = local[:tag]
	}
	if _, ok := dotlessDomains[domain]; ok {
		local = strings.ReplaceAll(local, ".", "")
	}
	domain = canonicalDomain(domain)
	// Cutting a tag can leave a trailing dot ("a.+x"), which no address
	// may end its local part with.
	local = strings.TrimRight(local, ".")
	if local == "" {
		// Nothing but a tag or dots: keep the address whole, it is its own
		// inbox.
		return addr
	}
	return local + "@" + domain
}

// canonicalDomain names the provider's main domain for a lower-cased
// domain of the same inboxes (googlemail.com: gmail.com), else domain.
func canonicalDomain(domain string) string {
	if main, ok := dotlessDomains[domain]; ok {
		return main
	}
	return domain
}

// emailDomain is the domain part of an address.
func emailDomain(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// budgetDomain names the domain a recipient's domain budget counts
// against: one name per domain, whatever its spelling. IDNA (UTS #46, as
// mail servers and resolvers apply it) maps full-width letters, Unicode
// and its punycode form, and composed and decomposed characters to one
// ASCII name ("ｅxample.com" is example.com); each spelling had a budget
// of its own, so DOMAIN_EMAIL_LIMIT could be multiplied at will. A name
// IDNA refuses keeps its own spelling. Then a provider's domains share
// one (canonicalDomain).
func budgetDomain(domain string) string {
	if ascii, err := idna.Lookup.ToASCII(domain); err == nil && ascii != "" {
		domain = ascii
	}
	return canonicalDomain(strings.ToLower(domain))
}
