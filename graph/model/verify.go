package model

import (
	"github.com/verifier/verifier/internal/account"
	"github.com/verifier/verifier/internal/status"
)

// VerifyEmailPayload is the answer of verifyEmail, verifyEmailWithCode and
// confirmEmailChange. Its receipt is a resolver of its own
// (verifyEmailPayloadResolver): a signature costs about a seventh of a
// verification's CPU, so it is minted only for a client that selects it.
type VerifyEmailPayload struct {
	account.Verification
	// Status is always VERIFIED.
	Status status.Status
}
