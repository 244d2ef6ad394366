// Package signer issues the JWTs verifier hands out, receipts (proof for an
// app's backend that an address is verified) and sign-in tokens, verifies
// the sign-in tokens, and serves the public keys as a JWKS at
// /.well-known/jwks.json.
//
// # Why Ed25519
//
// Apps check receipts offline with our public key, so the scheme must be
// asymmetric: an HMAC secret shared with every app would let any of them
// mint receipts. Among asymmetric schemes Ed25519 (JOSE "EdDSA", RFC 8037)
// has small keys and signatures (32 and 64 bytes), fast signing, and
// deterministic signatures with no per-signature randomness to get wrong,
// and no parameters to choose; current JOSE libraries in every language
// verify it. Signing and parsing are go-jose's, never hand-written, and
// only EdDSA is accepted: "none" and HMAC tokens do not parse.
//
// # Why kid is the key's thumbprint
//
// The kid is the RFC 7638 thumbprint of the public key (base64url
// SHA-256). It is derived from the key itself, so every replica computes
// the same kid for the same key with no coordination: replicas started
// with one SIGNING_KEY_FILE register one row, and a kid cannot be reused
// for a different key. A kid that is not 43 base64url characters cannot
// be ours and is refused without a look at the database.
//
// # Keys and rotation
//
// Keys live in the signing_keys table. Exactly one is current (a unique
// index on a column that is true for it and NULL for the others), so
// replicas starting or rotating at once cannot make two. On embedded
// defaults the first start generates a key and keeps its seed in the
// table; with SIGNING_KEY_FILE only the public key is registered and the
// private key never leaves the file.
//
// A rotation publishes before it signs, as JWKS consumers expect: Publish
// stores a new key as the next one (neither current nor retired: listed in
// the JWKS and accepted by VerifySession, signing nothing); every replica
// lists it once its copy of the table is cacheFor old, and an app's cached
// JWKS once its max-age ran out, so the operator's command waits
// PublishFor (cacheFor, jwksMaxAge and a margin) before Activate makes it
// current and retires the old key in one transaction. An app that meets a
// token of the new key and fetches the JWKS again, from whichever replica,
// finds it there. A replica that starts meanwhile reads the next key too. A
// rotation stopped between the two steps leaves a next key that is listed
// and never signs (nobody holds a token of it); the next Publish replaces
// it. Signer.Rotate runs both steps at once: right for a single replica and
// tests, which reload their own copy.
//
// When the current key changes (a rotation, a new SIGNING_KEY_FILE, or the
// file setting removed) the previous key is marked retired and its private
// half erased: it never signs again. Its public half stays listed in the
// JWKS, and VerifySession keeps accepting its tokens, until every token it
// can have signed has expired: retired_at + max(RECEIPT_TTL, SESSION_TTL) +
// a margin that covers clock skew between replicas and apps, and the few
// seconds another replica may still sign with it before it notices. Apps
// that cached the JWKS, and users holding a token, notice nothing.
//
// After a leak that is too long: tokens can be forged with any iat, so the
// key must go. Activate with revoke (`verifier signing-key rotate -revoke`)
// also revokes the previous key and every retired key still listed: each
// replica drops them from its JWKS and refuses their tokens once its copy
// is cacheFor old, which signs everyone out and voids unexpired receipts.
// A SIGNING_KEY_FILE that holds a revoked key is refused at start.
//
// Every replica reads the table, not only its own memory: the copy is
// trusted for a few seconds, and a token whose kid is missing from it
// triggers one read (at most one a second), so a key made by another
// replica verifies at once and made-up kids cannot flood the database.
package signer
