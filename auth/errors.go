package auth

import (
	"errors"
	"strings"
	"time"
	"unicode"
)

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
	// base64 or JSON, has claims of the wrong JSON type, names a content
	// key ID that does not parse, or has a content_ids claim with an empty
	// entry or more than MaxContentIDs entries.
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
	// ReasonWrongIssuer means iss is missing or is not a configured issuer,
	// or the key that verified the token is bound to another issuer (the
	// keys of an OpenID Connect issuer verify only that issuer's tokens).
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
	// Facts explain the refusal to the server's operator, for the log (see
	// Facts); nil when there is nothing to add. They are not for clients.
	Facts *Facts
}

// Facts are the non-secret facts that explain a refusal (issue: a refused
// token must be diagnosable from the server's log alone): what the server
// expected and what the token said. They never hold the token, its
// signature or key material. What the token said is reported only once
// its signature has verified (it is then the signer's word, not a
// forger's), and only as sanitised text: at most 64 bytes per value,
// non-printable characters replaced. A logger should still pass the
// values through its own redaction.
type Facts struct {
	// Now is the server's clock at the check.
	Now time.Time
	// Thumbprint is the certificate the header asked for, as
	// "x5t:<base64url>", "x5t#S256:<base64url>" or "kid:<value>"
	// (sanitised); empty when the header names none.
	Thumbprint string
	// Verified is true when the signature verified: the claims below are
	// then the token's.
	Verified bool
	// Issuer and Audience are the token's iss and aud (at most 8 entries).
	Issuer   string
	Audience []string
	// ExpiresAt, NotBefore and IssuedAt are the token's dates; zero when
	// absent.
	ExpiresAt, NotBefore, IssuedAt time.Time
	// ExpectedIssuers and ExpectedAudience are the configured iss and aud,
	// set on wrong_issuer and wrong_audience refusals; when the verifying
	// key is bound to an issuer it does not match, ExpectedIssuers is that
	// one issuer.
	ExpectedIssuers  []string
	ExpectedAudience string
}

// with attaches facts to e and returns it.
func (e *Error) with(f *Facts) *Error {
	e.Facts = f
	return e
}

// verified records what a token whose signature verified says.
func (f *Facts) verified(c *payload) {
	f.Verified = true
	f.Issuer = sanitize(c.issuer)
	for i, a := range c.audience {
		if i == 8 {
			break
		}
		f.Audience = append(f.Audience, sanitize(a))
	}
	if c.exp != nil {
		f.ExpiresAt = *c.exp
	}
	if c.nbf != nil {
		f.NotBefore = *c.nbf
	}
	if c.iat != nil {
		f.IssuedAt = *c.iat
	}
}

// askedFor is the certificate a header names, for Facts.Thumbprint.
func askedFor(h *header) string {
	switch {
	case h.x5t != nil:
		return "x5t:" + sanitize(*h.x5t)
	case h.x5tS256 != nil:
		return "x5t#S256:" + sanitize(*h.x5tS256)
	case h.kid != nil:
		return "kid:" + sanitize(*h.kid)
	}
	return ""
}

// maxFact is the most bytes of one value of the token a Fact quotes.
const maxFact = 64

// sanitize cuts s to maxFact bytes (on a character boundary, marking the
// cut) and replaces anything not printable, so a value from a token cannot
// forge or break a log line.
func sanitize(s string) string {
	clean := len(s) <= maxFact
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= 0x20 && s[i] < 0x7f
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i >= maxFact {
			b.WriteString("...")
			break
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Error returns "auth: <reason>: <detail>". The Facts are not part of it.
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
