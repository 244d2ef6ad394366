// Package apperr is the service's one error type. Every failure a client may
// see carries one of the contract's codes; anything else is INTERNAL and its
// detail stays in the logs.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code is an extensions.code of the public contract.
type Code string

// The contract's codes.
const (
	BadUserInput Code = "BAD_USER_INPUT"
	InvalidToken Code = "INVALID_TOKEN"
	TokenExpired Code = "TOKEN_EXPIRED"
	RateLimited  Code = "RATE_LIMITED"
	Internal     Code = "INTERNAL"
	// InvalidCode is a wrong or dead one-time code; AttemptsLeft says how
	// many more tries the registration has.
	InvalidCode        Code = "INVALID_CODE"
	InvalidCredentials Code = "INVALID_CREDENTIALS"
	EmailNotVerified   Code = "EMAIL_NOT_VERIFIED"
	Unauthenticated    Code = "UNAUTHENTICATED"
)

// Error is a failure the client is meant to see.
type Error struct {
	Code    Code
	Message string
	// RetryAfter is set with RateLimited.
	RetryAfter time.Duration
	// AttemptsLeft is set with InvalidCode.
	AttemptsLeft int
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds a client-facing error.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limited builds a RATE_LIMITED error that says when to try again.
func Limited(retryAfter time.Duration, format string, args ...any) *Error {
	e := Errorf(RateLimited, format, args...)
	e.RetryAfter = retryAfter
	return e
}

// WrongCode builds an INVALID_CODE error with the tries left.
func WrongCode(attemptsLeft int) *Error {
	e := Errorf(InvalidCode, "this code is not valid")
	if attemptsLeft <= 0 {
		e.Message = "this code no longer works; use the link in the email or ask for a new email"
	}
	e.AttemptsLeft = max(attemptsLeft, 0)
	return e
}

// From finds the client-facing error in err's chain. Anything else becomes
// a generic INTERNAL error, so no SQL, stack or host name reaches a client;
// ok reports whether err was client-facing.
func From(err error) (e *Error, ok bool) {
	if errors.As(err, &e) {
		return e, true
	}
	return &Error{Code: Internal, Message: "internal error"}, false
}

// CodeOf returns err's code, Internal for anything not client-facing.
func CodeOf(err error) Code {
	e, _ := From(err)
	return e.Code
}
