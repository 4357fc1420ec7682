package auth

import "errors"

// Reason is a stable refusal code from a closed set. It is safe to send to
// clients (for example as an RFC 6750 error_description), to log, and to use
// as a bounded metric label. New values are only ever added, never renamed.
type Reason string

// The refusal reasons, in the order [Reasons] returns them.
const (
	// ReasonMissingToken means no token was sent. The verifier never returns
	// it; the HTTP layer uses it so that every refusal has a Reason.
	ReasonMissingToken Reason = "missing_token"
	// ReasonTooLarge means the token is longer than MaxTokenSize bytes. It is
	// decided before any parsing or cryptography.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformed means the token is not a JWS compact token, has bad
	// base64 or JSON, has claims of the wrong JSON type, or names a content
	// key ID that does not parse.
	ReasonMalformed Reason = "malformed"
	// ReasonUnsupportedAlgorithm means the header's alg is not ES256 (for
	// example none, HS256, RS256 or ES384).
	ReasonUnsupportedAlgorithm Reason = "unsupported_algorithm"
	// ReasonUnknownSigningKey means the header's x5t, x5t#S256 or kid names no
	// trusted certificate, or the header names none and no trusted
	// certificate is currently valid.
	ReasonUnknownSigningKey Reason = "unknown_signing_key"
	// ReasonSigningKeyNotValid means the certificate the header names is
	// outside its NotBefore/NotAfter window, widened by the leeway.
	ReasonSigningKeyNotValid Reason = "signing_key_not_valid"
	// ReasonBadSignature means the signature does not verify.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonExpired means exp is in the past beyond the leeway.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid means nbf or iat is in the future beyond the leeway.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonWrongIssuer means iss is missing or is not a configured issuer.
	ReasonWrongIssuer Reason = "wrong_issuer"
	// ReasonWrongAudience means aud is missing or does not contain the
	// configured audience.
	ReasonWrongAudience Reason = "wrong_audience"
	// ReasonMissingClaim means exp is missing, or iat is missing while
	// Options.MaxLifetime is set.
	ReasonMissingClaim Reason = "missing_claim"
	// ReasonLifetimeTooLong means exp - iat exceeds Options.MaxLifetime.
	ReasonLifetimeTooLong Reason = "lifetime_too_long"
)

// Reasons returns every Reason, in a stable order, for documentation and for
// pre-initialising metric label values.
func Reasons() []Reason {
	return []Reason{
		ReasonMissingToken,
		ReasonTooLarge,
		ReasonMalformed,
		ReasonUnsupportedAlgorithm,
		ReasonUnknownSigningKey,
		ReasonSigningKeyNotValid,
		ReasonBadSignature,
		ReasonExpired,
		ReasonNotYetValid,
		ReasonWrongIssuer,
		ReasonWrongAudience,
		ReasonMissingClaim,
		ReasonLifetimeTooLong,
	}
}

// Error is a refusal to accept a token, modelled on x509.CertificateInvalidError.
// Reason is safe to show to clients. Err is internal detail for logs; it is
// built from fixed text, numbers and names from fixed lists, never contains
// bytes copied from the token, and never wraps a JWT library error. Match an
// Error with errors.As and decide on its Reason.
type Error struct {
	Reason Reason
	Err    error
}

// Error returns "auth: <reason>: <detail>".
func (e *Error) Error() string {
	if e.Err == nil {
		return "auth: " + string(e.Reason)
	}
	return "auth: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the internal detail.
func (e *Error) Unwrap() error { return e.Err }

// refuse builds a refusal whose detail is the fixed string msg.
//
// Security invariant: msg must never contain bytes copied from the token.
// Callers pass string constants, or text built from constants, numbers and
// names checked against a fixed list (isKnownAlg, isClaimName, jsonKind).
func refuse(r Reason, msg string) *Error {
	return &Error{Reason: r, Err: errors.New(msg)}
}
