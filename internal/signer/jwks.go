package signer

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksMaxAge is how long apps and proxies may keep the JWKS. A new key
// signs from the moment it is current, so an app that does not fetch again
// when it meets an unknown kid refuses new tokens for up to this long
// after a key change: short keeps that gap short. Longer would save little:
// the document is a few hundred bytes. Retired keys stay listed for far
// longer than this (retention), so a cached copy never lacks the key of a
// token that is still live because of the cache.
const jwksMaxAge = 60

// jwksRetryAfter is the Retry-After of a JWKS that cannot be served. Only a
// signer that never read the key table answers so (one that did serves its
// copy while the database is away, see keys), and each request reads the
// table again: a database back within seconds serves the next one. JOSE
// libraries that honour it then ask again soon, not at their next refresh.
const jwksRetryAfter = 5 * time.Second

// ServeHTTP answers GET /.well-known/jwks.json: the public keys (RFC
// 7517) that verify receipts and session tokens, the current one first.
// Only public halves are ever listed.
func (s *Signer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	v, err := s.keys(r.Context())
	if err != nil {
		s.log.Error("jwks: no signing keys to list", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(jwksRetryAfter/time.Second)))
		http.Error(w, "signing keys unavailable", http.StatusServiceUnavailable)
		return
	}
	now := s.clock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range v.keys {
		if s.listed(k, now) {
			set.Keys = append(set.Keys, jose.JSONWebKey{
				Key: k.pub, KeyID: k.kid, Algorithm: string(jose.EdDSA), Use: "sig",
			})
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		s.log.Error("jwks: encode", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
