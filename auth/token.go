package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// This file reads a JWS compact token: its three segments, the JSON of its
// header and payload, and its ES256 signature. It does not use a JWT
// library's decoder, on purpose.
//
// Security invariant: one token means one thing to every reader. Go's
// encoding/json (which JWT libraries use) matches member names ignoring
// case, with Unicode folding ("\u212aids", with the Kelvin sign, is "kids"),
// and keeps the last of two members of the same name; other languages'
// parsers match exactly or keep the first. A signed payload with "kids" and
// "KIDS" would grant one set of keys here and another elsewhere, and an
// issuer that strips a caller-chosen "kids" by exact name would be
// bypassed. So the header and the payload are read here, once, with
// go-json-experiment/json's token decoder (the upstream of encoding/json/v2,
// already the record decoder of package keystore), which refuses a member
// named twice anywhere in the document and invalid UTF-8; names are
// compared exactly; and a member whose name is a case or Unicode-folding
// variant of a name this package reads (knownHeader, knownClaims) refuses
// the token as malformed. Dates are JSON numbers only (a string date is
// malformed, as the README always said). The signature must be 64 bytes;
// see checkSignatureForm for why high-S twins are accepted and how they
// count as one token.

// alg is the only algorithm accepted.
const alg = "ES256"

// knownHeader are the header parameters registered by RFC 7515 section 4.1.
// This package reads alg, kid, x5t, x5t#S256 and crit; a case variant of
// any of them refuses the token.
var knownHeader = []string{"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}

// Claim names this package reads. Every claim the verifier reads must be
// listed in knownClaims (a test checks that readClaims reads only these),
// so that its case variants are refused too.
const (
	claimIssuer    = "iss"
	claimSubject   = "sub"
	claimAudience  = "aud"
	claimExpires   = "exp"
	claimNotBefore = "nbf"
	claimIssuedAt  = "iat"
	claimID        = "jti"
	// claimMaxUses is Azure Media Services' replay limit: how many key or
	// license answers one token may get.
	claimMaxUses = "urn:microsoft:azure:mediaservices:maxuses"
)

// knownClaims are the registered claims of RFC 7519 section 4.1 and the
// claims that grant something. A member whose name folds to one of them
// without being it refuses the token.
var knownClaims = []string{
	claimIssuer, claimSubject, claimAudience, claimExpires, claimNotBefore, claimIssuedAt, claimID,
	claimKeyIDs, claimContentKeyID, claimContentIDs, claimMaxUses,
}

// MaxUsesLimit is the largest maxuses claim accepted.
const MaxUsesLimit = 1 << 30

// maxAudiences bounds the aud array a token may carry.
const maxAudiences = 64

// header is what this package reads from a token's header.
type header struct {
	alg     string
	hasAlg  bool
	kid     *string
	x5t     *string
	x5tS256 *string
	crit    bool
}

// payload is what this package reads from a token's claims. Pointers tell
// an absent (or null) claim from an empty one.
type payload struct {
	issuer, subject string
	audience        []string
	hasAudience     bool
	exp, nbf, iat   *time.Time
	keyIDs          *[]string
	contentKeyID    *string
	contentIDs      *[]string
	maxUses         int // 0: no maxuses claim
}

// token is a JWS compact token split and decoded; nothing is verified yet.
type token struct {
	header header
	claims payload
	signed string // header.payload: the signing input
	sig    []byte // the raw signature
}

// segments splits raw into its three segments, or refuses it.
func segments(raw string) (h, p, s string, e *Error) {
	h, rest, ok1 := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return "", "", "", refuse(ReasonMalformed, fmt.Sprintf("token has %d segments, want 3", strings.Count(raw, ".")+1))
	}
	return h, p, s, nil
}

var segmentEncoding = base64.RawURLEncoding.Strict()

// decodePart decodes one unpadded base64url segment: one encoding per
// byte string (Strict refuses non-zero trailing bits).
func decodePart(s string) ([]byte, *Error) {
	b, err := segmentEncoding.DecodeString(s)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, refuse(ReasonMalformed, fmt.Sprintf("a segment is not unpadded base64url (byte %d)", int64(ce)))
		}
		return nil, refuse(ReasonMalformed, "a segment is not unpadded base64url")
	}
	return b, nil
}

// parseHeader reads the header segment. The alg is checked by the caller,
// so that a foreign algorithm is told apart from a malformed token.
func parseHeader(seg string) (header, *Error) {
	var h header
	b, e := decodePart(seg)
	if e != nil {
		return h, e
	}
	err := readObject(b, "header", knownHeader, func(name string, d *jsontext.Decoder) error {
		switch name {
		case "alg":
			// A non-string alg is reported as missing by parse.
			s, null, err := readString(d, name, "header")
			var e *Error
			if errors.As(err, &e) {
				return nil
			}
			h.alg, h.hasAlg = s, !null
			return err
		case "kid":
			return readOptionalString(d, name, "header", &h.kid)
		case "x5t":
			return readOptionalString(d, name, "header", &h.x5t)
		case "x5t#S256":
			return readOptionalString(d, name, "header", &h.x5tS256)
		case "crit":
			h.crit = true
		}
		return d.SkipValue()
	})
	if err != nil {
		return h, asError(err)
	}
	return h, nil
}

// parseClaims reads the payload segment.
func parseClaims(seg string) (payload, *Error) {
	var c payload
	b, e := decodePart(seg)
	if e != nil {
		return c, e
	}
	err := readObject(b, "payload", knownClaims, func(name string, d *jsontext.Decoder) error {
		switch name {
		case claimIssuer:
			s, _, err := readString(d, name, "claim")
			c.issuer = s
			return err
		case claimSubject:
			s, _, err := readString(d, name, "claim")
			c.subject = s
			return err
		case claimAudience:
			return readAudience(d, &c)
		case claimExpires:
			return readDate(d, name, &c.exp)
		case claimNotBefore:
			return readDate(d, name, &c.nbf)
		case claimIssuedAt:
			return readDate(d, name, &c.iat)
		case claimID:
			_, _, err := readString(d, name, "claim")
			return err
		case claimKeyIDs:
			return readStrings(d, name, &c.keyIDs)
		case claimContentKeyID:
			return readOptionalString(d, name, "claim", &c.contentKeyID)
		case claimContentIDs:
			return readStrings(d, name, &c.contentIDs)
		case claimMaxUses:
			return readMaxUses(d, &c)
		}
		return d.SkipValue()
	})
	if err != nil {
		return c, asError(err)
	}
	return c, nil
}

// readObject decodes b, which must be exactly one JSON object, calling
// member for each of its members (member must consume the value). A name
// used twice (at any depth), invalid UTF-8, or a name that folds to one of
// known without being it, is refused.
func readObject(b []byte, what string, known []string, member func(name string, d *jsontext.Decoder) error) error {
	d := jsontext.NewDecoder(bytes.NewBuffer(b))
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return refuse(ReasonMalformed, fmt.Sprintf("the %s is not a JSON object", what))
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		name := tok.String()
		if k, ok := confusable(name, known); ok {
			return refuse(ReasonMalformed, fmt.Sprintf("the %s has a member whose name is a case or Unicode-folding variant of %q", what, k))
		}
		if err := member(name, d); err != nil {
			return err
		}
	}
	if _, err := d.ReadToken(); err != nil { // '}'
		return err
	}
	if _, err := d.ReadToken(); err == nil {
		return refuse(ReasonMalformed, fmt.Sprintf("the %s holds more than one JSON value", what))
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// confusable reports the known name that name is a variant of: equal under
// Unicode simple case folding (strings.EqualFold) or under the folding
// encoding/json applies (upper case of the lower case of each rune, which
// also maps "ı" to "I"), without being equal. The known names are ASCII, so
// an ASCII name is a variant exactly when it equals one ignoring ASCII
// case; only a name with other characters is folded.
func confusable(name string, known []string) (string, bool) {
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	folded := ""
	if !ascii {
		folded = jsonFold(name)
	}
	for _, k := range known {
		if name == k {
			continue
		}
		if ascii {
			if len(name) == len(k) && strings.EqualFold(name, k) {
				return k, true
			}
			continue
		}
		if len(name) <= 4*len(k) && (strings.EqualFold(name, k) || folded == strings.ToUpper(k)) {
			return k, true
		}
	}
	return "", false
}

// jsonFold folds s the way encoding/json matches names.
func jsonFold(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		b.WriteRune(unicode.ToUpper(unicode.ToLower(r)))
	}
	return b.String()
}

// asError turns a decoding failure into a refusal without quoting the
// token: a syntax error gives its offset, a repeated name is named only
// when it is one of ours.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			name := se.JSONPointer.LastToken()
			if isClaimName(name) || isHeaderName(name) {
				return refuse(ReasonMalformed, fmt.Sprintf("member %q appears twice", name))
			}
			return refuse(ReasonMalformed, "a member name appears twice")
		}
		return refuse(ReasonMalformed, fmt.Sprintf("a segment is not valid JSON (offset %d)", se.ByteOffset))
	}
	return refuse(ReasonMalformed, "a segment is not valid JSON")
}

// kindName names a JSON kind for an error detail.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "bool"
	case '[':
		return "array"
	case '{':
		return "object"
	case 'n':
		return "null"
	}
	return "unexpected"
}

func wrongType(what, name string, k jsontext.Kind, want string) *Error {
	return refuse(ReasonMalformed, fmt.Sprintf("%s %s has the wrong JSON type (%s, want %s)", what, name, kindName(k), want))
}

// readString reads a string or null (null reports true).
func readString(d *jsontext.Decoder, name, what string) (string, bool, error) {
	if k := d.PeekKind(); k != '"' && k != 'n' {
		if err := d.SkipValue(); err != nil {
			return "", false, err
		}
		return "", false, wrongType(what, name, k, "a string")
	}
	tok, err := d.ReadToken()
	if err != nil {
		return "", false, err
	}
	if tok.Kind() == 'n' {
		return "", true, nil
	}
	return tok.String(), false, nil
}

// readOptionalString reads a string into *dst, null leaving it nil.
func readOptionalString(d *jsontext.Decoder, name, what string, dst **string) error {
	s, null, err := readString(d, name, what)
	if err != nil || null {
		return err
	}
	*dst = &s
	return nil
}

// readStrings reads an array of strings into *dst (null leaves it nil).
func readStrings(d *jsontext.Decoder, name string, dst **[]string) error {
	switch k := d.PeekKind(); k {
	case 'n':
		_, err := d.ReadToken()
		return err
	case '[':
	default:
		if err := d.SkipValue(); err != nil {
			return err
		}
		return wrongType("claim", name, k, "an array of strings")
	}
	if _, err := d.ReadToken(); err != nil {
		return err
	}
	out := []string{}
	for d.PeekKind() != ']' {
		if k := d.PeekKind(); k != '"' {
			if err := d.SkipValue(); err != nil {
				return err
			}
			return wrongType("claim", name, k, "an array of strings")
		}
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		out = append(out, tok.String())
	}
	if _, err := d.ReadToken(); err != nil {
		return err
	}
	*dst = &out
	return nil
}

// readAudience reads aud: a string or an array of strings (RFC 7519).
func readAudience(d *jsontext.Decoder, c *payload) error {
	if d.PeekKind() == '"' || d.PeekKind() == 'n' {
		s, null, err := readString(d, claimAudience, "claim")
		if err == nil && !null {
			c.audience, c.hasAudience = []string{s}, true
		}
		return err
	}
	var list *[]string
	if err := readStrings(d, claimAudience, &list); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return refuse(ReasonMalformed, "claim aud has the wrong JSON type (want a string or an array of strings)")
		}
		return err
	}
	if len(*list) > maxAudiences {
		return refuse(ReasonMalformed, fmt.Sprintf("claim aud has %d entries, limit %d", len(*list), maxAudiences))
	}
	c.audience, c.hasAudience = *list, true
	return nil
}

// maxDate is the last second of year 9999, the latest date a token may
// carry: a later one is surely a mistake, and converting it to a time
// would overflow.
const maxDate = 253402300799

// readDate reads a NumericDate (RFC 7519): a JSON number of seconds since
// the epoch, fractions allowed, in [0, maxDate]. null is absent; a string
// is refused, whatever it holds.
func readDate(d *jsontext.Decoder, name string, dst **time.Time) error {
	switch k := d.PeekKind(); k {
	case 'n':
		_, err := d.ReadToken()
		return err
	case '0':
	default:
		if err := d.SkipValue(); err != nil {
			return err
		}
		return wrongType("claim", name, k, "a number (NumericDate)")
	}
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	f, err := tok.Float()
	if err != nil || f < 0 || f > maxDate {
		return refuse(ReasonMalformed, fmt.Sprintf("claim %s is not a date between 1970 and 9999", name))
	}
	sec, frac := math.Modf(f)
	t := time.Unix(int64(sec), int64(frac*1e9))
	*dst = &t
	return nil
}

// readMaxUses reads the maxuses claim: a positive integer, as a JSON
// number or, as Azure Media Services' .NET samples write it, a string of
// decimal digits. Anything else refuses the token (it cannot be ignored:
// the token would be unlimited).
func readMaxUses(d *jsontext.Decoder, c *payload) error {
	k := d.PeekKind()
	if k != '"' && k != '0' {
		if err := d.SkipValue(); err != nil {
			return err
		}
		return wrongType("claim", claimMaxUses, k, "a positive integer")
	}
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	var n int64
	if k == '"' {
		s := tok.String()
		if len(s) == 0 || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
			return refuse(ReasonMalformed, "claim "+claimMaxUses+" is not a positive integer")
		}
		n, err = strconv.ParseInt(s, 10, 64)
	} else {
		n, err = tok.Int()
	}
	if err != nil || n < 1 || n > MaxUsesLimit {
		return refuse(ReasonMalformed, fmt.Sprintf("claim %s is not an integer between 1 and %d", claimMaxUses, MaxUsesLimit))
	}
	c.maxUses = int(n)
	return nil
}

// isHeaderName reports whether s is a registered header parameter name,
// and so safe to log.
func isHeaderName(s string) bool { return slices.Contains(knownHeader, s) }

// signatureSize is the size of an ES256 signature: r and s, 32 bytes each
// (RFC 7518 section 3.4).
const signatureSize = 64

// checkSignatureForm refuses a signature that is not 64 bytes, before any
// key is used.
//
// High-S signatures are accepted. (r, n-s) verifies whenever (r, s) does,
// so every token has a twin with another signature; refusing the upper
// half would be the other way to have one signature per token, but the
// signers that issue these tokens (Azure Key Vault, .NET, OpenSSL, Go's
// crypto/ecdsa) do not normalise s, and half of their tokens would be
// refused. Instead, what identifies a token is what its signer signed: the
// replay counter is keyed by the SHA-256 of the signing input
// (Claims.TokenDigest), which both twins share, so a twin is the same
// token to it; the verified-token cache, keyed by the signature, holds a
// twin as one more entry for the same verified claims.
func checkSignatureForm(sig []byte) *Error {
	if len(sig) != signatureSize {
		return refuse(ReasonBadSignature, fmt.Sprintf("signature is %d bytes, want %d", len(sig), signatureSize))
	}
	return nil
}

// verifySignature reports whether sig is an ES256 signature of signed by
// key. sig has been checked by checkSignatureForm.
func verifySignature(key *ecdsa.PublicKey, digest *[32]byte, sig []byte) bool {
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(key, digest[:], r, s)
}

// parse splits and decodes raw: the header first (so a foreign algorithm
// is told from a malformed token), then the payload and the signature.
func parse(raw string) (*token, *Error) {
	hs, ps, ss, e := segments(raw)
	if e != nil {
		return nil, e
	}
	h, e := parseHeader(hs)
	if e != nil {
		return nil, e
	}
	if !h.hasAlg {
		return nil, refuse(ReasonMalformed, "alg header is missing or not a string")
	}
	if h.alg != alg {
		if isKnownAlg(h.alg) {
			return nil, refuse(ReasonUnsupportedAlgorithm, "alg "+h.alg+" is not ES256")
		}
		return nil, refuse(ReasonUnsupportedAlgorithm, "alg is not ES256")
	}
	c, e := parseClaims(ps)
	if e != nil {
		return nil, e
	}
	sig, e := decodePart(ss)
	if e != nil {
		return nil, e
	}
	return &token{header: h, claims: c, signed: raw[:len(hs)+1+len(ps)], sig: sig}, nil
}

// digest is the SHA-256 of the signing input, which ES256 signs.
func (t *token) digest() [32]byte { return sha256.Sum256([]byte(t.signed)) }
