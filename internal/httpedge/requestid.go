package httpedge

import (
	"crypto/rand"
	"encoding/hex"
)

// HeaderRequestID is the header that carries a request's ID both ways.
const HeaderRequestID = "X-Request-Id"

// NewRequestID returns a random 24-hex-digit request ID.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestID returns incoming when it is a short plain token a client may
// use to correlate (at most 64 letters, digits, '-', '_' or '.', and not
// shaped like a credential), and a new random ID otherwise, so a caller
// cannot inject text, or a secret, into the logs and audit records.
func RequestID(incoming string) string {
	if len(incoming) == 0 || len(incoming) > 64 || HasCredential(incoming) {
		return NewRequestID()
	}
	for _, c := range incoming {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return NewRequestID()
		}
	}
	return incoming
}
