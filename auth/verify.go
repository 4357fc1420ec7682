package auth

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// MaxTokenSize is the largest token, in bytes, that Verify will look at.
	// Longer tokens are refused with ReasonTooLarge before any parsing.
	MaxTokenSize = 8192
	// DefaultLeeway is the usual clock-skew allowance (the server's default).
	DefaultLeeway = 60 * time.Second
	// MaxLeeway is the largest Options.Leeway that NewVerifier accepts.
	MaxLeeway = 5 * time.Minute
)

// Claim names for the content keys a token grants.
const (
	// claimContentKeyID is Azure Media Services' single-key claim.
	claimContentKeyID = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
	// claimKeyIDs is our multi-key claim, an array of key ID strings.
	claimKeyIDs = "kids"
)

// Claims is what a verified token says.
type Claims struct {
	Subject   string     // sub
	Issuer    string     // iss, one of Options.Issuers
	IssuedAt  time.Time  // iat; zero if absent
	ExpiresAt time.Time  // exp
	KeyIDs    [][16]byte // keys granted, parsed with Options.ParseKeyID, de-duplicated: the contentkeyidentifier claim, then "kids" in order
	Unbound   bool       // the token names no key and Options.AllowUnbound is set: it grants every key
	// SigningKey is the SHA-256 thumbprint, in lower-case hex, of the
	// certificate whose key verified the token.
	SigningKey string
}

// Grants reports whether the token grants the content key kid: it is
// unbound, or kid is one of KeyIDs. A token that names no key, verified
// without Options.AllowUnbound, grants nothing; so does one whose "kids" claim
// is an empty array.
func (c *Claims) Grants(kid [16]byte) bool {
	return c.Unbound || slices.Contains(c.KeyIDs, kid)
}

// Options configures a Verifier.
type Options struct {
	// Issuers is required and must not be empty: iss must equal one of them.
	Issuers []string
	// Audience is required: aud (a string or an array) must contain it.
	Audience string
	// Leeway is the clock-skew allowance applied to exp, nbf, iat and to the
	// signing certificate's validity window: 0 means none (callers usually
	// want DefaultLeeway, 60s); more than MaxLeeway (5m) or negative is an
	// error.
	Leeway time.Duration
	// MaxLifetime, when positive, requires iat and limits exp - iat to it.
	// 0 means unlimited.
	MaxLifetime time.Duration
	// AllowUnbound makes a token that names no content key grant every key.
	// Default false: such a token verifies but grants nothing.
	AllowUnbound bool
	// ParseKeyID is required. It parses one content key ID string from the
	// token (the caller's canonical UUID parser). A token with a key ID it
	// rejects is malformed. Its error is not passed on, since it may quote
	// its input.
	ParseKeyID func(string) ([16]byte, error)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Registerer, when set, gets keydelivery_token_verification_duration_seconds:
	// the time of each full verification (a verified-token cache hit is not
	// one, and costs no clock read).
	Registerer prometheus.Registerer
}

// Verifier checks tokens against a Trust. It is safe for concurrent use.
type Verifier struct {
	trust        *Trust
	parser       *jwt.Parser // built once; it holds no per-token state
	issuers      []string
	leeway       time.Duration
	maxLifetime  time.Duration
	allowUnbound bool
	parseKeyID   func(string) ([16]byte, error)
	now          func() time.Time
	duration     prometheus.Histogram // nil without Options.Registerer
}

// NewVerifier returns a Verifier for tokens signed by a certificate in trust.
// It checks opts and fills in defaults.
func NewVerifier(trust *Trust, opts Options) (*Verifier, error) {
	if trust == nil {
		return nil, errors.New("auth: new verifier: nil trust")
	}
	if len(opts.Issuers) == 0 {
		return nil, errors.New("auth: new verifier: no issuers")
	}
	if slices.Contains(opts.Issuers, "") {
		return nil, errors.New("auth: new verifier: empty issuer")
	}
	if opts.Audience == "" {
		return nil, errors.New("auth: new verifier: no audience")
	}
	if opts.Leeway < 0 || opts.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: new verifier: leeway %v is outside [0, %v]", opts.Leeway, MaxLeeway)
	}
	if opts.MaxLifetime < 0 {
		return nil, fmt.Errorf("auth: new verifier: negative max lifetime %v", opts.MaxLifetime)
	}
	if opts.ParseKeyID == nil {
		return nil, errors.New("auth: new verifier: no key ID parser")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var duration prometheus.Histogram
	if opts.Registerer != nil {
		duration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "keydelivery_token_verification_duration_seconds",
			Help: "Time of a full token verification (ES256 signature and claims); verified-token cache hits are counted in keydelivery_token_cache_hits_total instead.",
			// ES256 verification costs about 100 µs of CPU; the tail shows
			// a saturated CPU.
			Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025},
		})
		if err := opts.Registerer.Register(duration); err != nil {
			return nil, fmt.Errorf("auth: new verifier: %w", err)
		}
	}
	return &Verifier{
		duration: duration,
		trust:    trust,
		// Security invariant: only ES256 is ever accepted, and golang-jwt
		// validates claims only after the signature has verified.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
			jwt.WithAudience(opts.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(opts.Now),
			jwt.WithStrictDecoding(), // one encoding per token: no malleable base64 tails
		),
		issuers:      slices.Clone(opts.Issuers),
		leeway:       opts.Leeway,
		maxLifetime:  opts.MaxLifetime,
		allowUnbound: opts.AllowUnbound,
		parseKeyID:   opts.ParseKeyID,
		now:          opts.Now,
	}, nil
}

// tokenClaims is the claims set we decode into: the registered claims plus
// the two grant claims. Pointers distinguish an absent claim from an empty
// one.
type tokenClaims struct {
	jwt.RegisteredClaims
	KeyIDs       *[]string `json:"kids,omitempty"`
	ContentKeyID *string   `json:"urn:microsoft:azure:mediaservices:contentkeyidentifier,omitempty"`
}

// Verify checks raw, a JWS compact token, and returns what it says. On
// refusal the error is always an *Error.
//
// Order: size; structure, base64 and JSON; alg must be ES256; the signing
// certificate is chosen from the header and must be within its validity
// window; the signature; then, only once the signature has verified, exp,
// nbf, iat, aud, iss, lifetime and the granted key IDs.
func (v *Verifier) Verify(raw string) (Claims, error) {
	c, _, _, err := v.verify(raw)
	return c, err
}

// observe records the duration of a verification that started at start.
func (v *Verifier) observe(start time.Time) {
	if v.duration != nil {
		v.duration.Observe(time.Since(start).Seconds())
	}
}

// verify is Verify that also says which trust set and certificate verified
// the token, for the cache.
func (v *Verifier) verify(raw string) (Claims, *trustSet, *trusted, error) {
	if v.duration != nil {
		defer v.observe(time.Now())
	}
	// Security invariant: nothing is parsed before this check.
	if len(raw) > MaxTokenSize {
		return Claims{}, nil, nil, refuse(ReasonTooLarge, fmt.Sprintf("token is %d bytes, limit %d", len(raw), MaxTokenSize))
	}
	set := v.trust.set.Load() // one snapshot for the whole verification
	now := v.now()

	var (
		tc   tokenClaims
		used *trusted
	)
	tok, err := v.parser.ParseWithClaims(raw, &tc, func(t *jwt.Token) (any, error) {
		c, e := v.selectKey(set, t, raw, now)
		if e != nil {
			return nil, e
		}
		used = c
		return c.cert.PublicKey, nil
	})
	if err != nil {
		return Claims{}, nil, nil, classify(raw, tok, &tc, err)
	}

	// The signature has verified and exp, nbf, iat and aud are valid.
	if !slices.Contains(v.issuers, tc.Issuer) {
		if tc.Issuer == "" {
			return Claims{}, nil, nil, refuse(ReasonWrongIssuer, "iss claim is missing")
		}
		return Claims{}, nil, nil, refuse(ReasonWrongIssuer, "iss claim is not a configured issuer")
	}
	c := Claims{
		Subject:    tc.Subject,
		Issuer:     tc.Issuer,
		ExpiresAt:  tc.ExpiresAt.Time, // non-nil: WithExpirationRequired
		SigningKey: used.sha256Hex,
	}
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	if v.maxLifetime > 0 {
		if tc.IssuedAt == nil {
			return Claims{}, nil, nil, refuse(ReasonMissingClaim, "iat claim is required when a maximum lifetime is set")
		}
		if life := c.ExpiresAt.Sub(c.IssuedAt); life > v.maxLifetime {
			return Claims{}, nil, nil, refuse(ReasonLifetimeTooLong, fmt.Sprintf("exp - iat is %v, limit %v", life, v.maxLifetime))
		}
	}
	if err := v.grants(&c, &tc); err != nil {
		return Claims{}, nil, nil, err
	}
	return c, set, used, nil
}

// grants fills in KeyIDs and Unbound.
func (v *Verifier) grants(c *Claims, tc *tokenClaims) *Error {
	if tc.ContentKeyID == nil && tc.KeyIDs == nil {
		c.Unbound = v.allowUnbound
		return nil
	}
	n := 0
	if tc.ContentKeyID != nil {
		n++
	}
	if tc.KeyIDs != nil {
		n += len(*tc.KeyIDs)
	}
	c.KeyIDs = make([][16]byte, 0, n)
	add := func(s string) bool {
		// The parser's error is dropped: it may quote the token's text.
		id, err := v.parseKeyID(s)
		if err != nil {
			return false
		}
		if !slices.Contains(c.KeyIDs, id) {
			c.KeyIDs = append(c.KeyIDs, id)
		}
		return true
	}
	if tc.ContentKeyID != nil && !add(*tc.ContentKeyID) {
		return refuse(ReasonMalformed, claimContentKeyID+" claim is not a valid key ID")
	}
	if tc.KeyIDs != nil {
		for i, s := range *tc.KeyIDs {
			if !add(s) {
				return refuse(ReasonMalformed, fmt.Sprintf("%s[%d] is not a valid key ID", claimKeyIDs, i))
			}
		}
	}
	return nil
}

// selectKey is the keyfunc: it picks the certificate the header names, or,
// when it names none, the currently valid certificate whose key verifies the
// signature. golang-jwt has already checked that alg is ES256.
//
// Security invariant: a certificate is only ever taken from set, never from
// the token (x5c and jwk headers are ignored).
func (v *Verifier) selectKey(set *trustSet, t *jwt.Token, raw string, now time.Time) (*trusted, *Error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, refuse(ReasonMalformed, "crit header is not supported")
	}
	c, named, e := lookupHeader(set, t.Header)
	if e != nil {
		set.missed(e) // an unknown key: the remote sources look for it
		return nil, e
	}
	if named {
		switch c.cert.Status(now, v.leeway) {
		case statusExpired:
			return nil, refuse(ReasonSigningKeyNotValid, "the certificate named by the header has expired")
		case statusNotYetValid:
			return nil, refuse(ReasonSigningKeyNotValid, "the certificate named by the header is not yet valid")
		}
		return c, nil
	}

	// The header names no certificate: try each currently valid one. This
	// costs one extra signature check, but tells us which key signed.
	var candidates []*trusted
	for _, c := range set.certs {
		if c.cert.Status(now, v.leeway) == statusValid {
			candidates = append(candidates, c)
		}
	}
	switch len(candidates) {
	case 0:
		return nil, refuse(ReasonUnknownSigningKey, "the header names no certificate and no trusted certificate is currently valid")
	case 1:
		return candidates[0], nil // the parser verifies the signature
	}
	input := raw[:strings.LastIndexByte(raw, '.')] // raw has exactly three segments here
	for _, c := range candidates {
		if jwt.SigningMethodES256.Verify(input, t.Signature, c.cert.PublicKey) == nil {
			return c, nil
		}
	}
	return nil, refuse(ReasonBadSignature, "the header names no certificate and the signature verifies with no currently valid certificate")
}

// lookupHeader resolves x5t, x5t#S256 or kid. named is false when the header
// has none of them. x5t and x5t#S256 take precedence over kid; when both are
// present they must name the same certificate.
func lookupHeader(set *trustSet, h map[string]any) (c *trusted, named bool, e *Error) {
	var bySHA1, bySHA256 *trusted
	if v, ok := h["x5t"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, true, refuse(ReasonMalformed, "x5t header is not a string")
		}
		var sum [20]byte
		if e := decodeThumbprint(s, sum[:], "x5t"); e != nil {
			return nil, true, e
		}
		if bySHA1 = set.bySHA1[sum]; bySHA1 == nil {
			return nil, true, refuse(ReasonUnknownSigningKey, "x5t header names no trusted certificate")
		}
	}
	if v, ok := h["x5t#S256"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, true, refuse(ReasonMalformed, "x5t#S256 header is not a string")
		}
		var sum [32]byte
		if e := decodeThumbprint(s, sum[:], "x5t#S256"); e != nil {
			return nil, true, e
		}
		if bySHA256 = set.bySHA256[sum]; bySHA256 == nil {
			return nil, true, refuse(ReasonUnknownSigningKey, "x5t#S256 header names no trusted certificate")
		}
	}
	switch {
	case bySHA1 != nil && bySHA256 != nil:
		if bySHA1 != bySHA256 {
			return nil, true, refuse(ReasonUnknownSigningKey, "x5t and x5t#S256 headers name different certificates")
		}
		return bySHA1, true, nil
	case bySHA1 != nil:
		return bySHA1, true, nil
	case bySHA256 != nil:
		return bySHA256, true, nil
	}

	v, ok := h["kid"]
	if !ok {
		return nil, false, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, true, refuse(ReasonMalformed, "kid header is not a string")
	}
	// The encodings are told apart by length alone: base64url of 20 and 32
	// bytes is 27 and 43 characters (odd, so never hex), hex is 40 and 64.
	var sha1Sum [20]byte
	var sha256Sum [32]byte
	var found *trusted
	switch len(s) {
	case 27:
		if _, err := base64.RawURLEncoding.Strict().Decode(sha1Sum[:], []byte(s)); err == nil {
			found = set.bySHA1[sha1Sum]
		}
	case 40:
		if _, err := hex.Decode(sha1Sum[:], []byte(s)); err == nil {
			found = set.bySHA1[sha1Sum]
		}
	case 43:
		if _, err := base64.RawURLEncoding.Strict().Decode(sha256Sum[:], []byte(s)); err == nil {
			found = set.bySHA256[sha256Sum]
		}
	case 64:
		if _, err := hex.Decode(sha256Sum[:], []byte(s)); err == nil {
			found = set.bySHA256[sha256Sum]
		}
	}
	if found == nil {
		found = set.lookupKeyID(s) // a JWKS kid, or a Key Vault key identifier
	}
	if found == nil {
		return nil, true, refuse(ReasonUnknownSigningKey, "kid header names no trusted certificate")
	}
	return found, true, nil
}

// decodeThumbprint decodes an unpadded base64url thumbprint into dst, whose
// length is the digest size.
func decodeThumbprint(s string, dst []byte, name string) *Error {
	if len(s) != base64.RawURLEncoding.EncodedLen(len(dst)) {
		return refuse(ReasonUnknownSigningKey, name+" header has the wrong length for its digest")
	}
	if _, err := base64.RawURLEncoding.Strict().Decode(dst, []byte(s)); err != nil {
		return refuse(ReasonMalformed, name+" header is not unpadded base64url")
	}
	return nil
}

// classify turns a golang-jwt error into an *Error. tok and tc hold whatever
// was decoded before the failure.
//
// Security invariant: golang-jwt's messages are not passed on, since some of
// them quote the token (the alg, JSON syntax errors). Details are rebuilt from
// fixed text and numbers.
func classify(raw string, tok *jwt.Token, tc *tokenClaims, err error) *Error {
	var ae *Error
	if errors.As(err, &ae) { // from selectKey
		return ae
	}
	if tok != nil && tok.Header != nil {
		alg, ok := tok.Header["alg"].(string)
		if !ok {
			return refuse(ReasonMalformed, "alg header is missing or not a string")
		}
		if alg != jwt.SigningMethodES256.Alg() {
			if isKnownAlg(alg) {
				return refuse(ReasonUnsupportedAlgorithm, "alg "+alg+" is not ES256")
			}
			return refuse(ReasonUnsupportedAlgorithm, "alg is not ES256")
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed, describeMalformed(raw, err))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse(ReasonBadSignature, "signature does not verify")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && tc.ExpiresAt == nil:
		return refuse(ReasonMissingClaim, "exp claim is missing")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired, "exp is in the past beyond the leeway")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(ReasonNotYetValid, "nbf is in the future beyond the leeway")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse(ReasonNotYetValid, "iat is in the future beyond the leeway")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse(ReasonWrongAudience, "aud claim does not contain the audience")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(ReasonWrongAudience, "aud claim is missing") // exp is present, so it is aud
	case errors.Is(err, jwt.ErrInvalidType):
		return refuse(ReasonMalformed, "a registered claim has the wrong JSON type")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuse(ReasonMalformed, "header is not a JSON object with an alg")
	default:
		return refuse(ReasonMalformed, "token could not be verified")
	}
}

// describeMalformed says what is wrong without quoting the token.
func describeMalformed(raw string, err error) string {
	if n := strings.Count(raw, ".") + 1; n != 3 {
		return fmt.Sprintf("token has %d segments, want 3", n)
	}
	var (
		b64 base64.CorruptInputError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &b64):
		return fmt.Sprintf("a segment is not unpadded base64url (byte %d)", int64(b64))
	case errors.As(err, &syn):
		return fmt.Sprintf("a segment is not valid JSON (offset %d)", syn.Offset)
	case errors.As(err, &typ):
		if isClaimName(typ.Field) {
			return fmt.Sprintf("claim %s has the wrong JSON type (%s)", typ.Field, jsonKind(typ.Value))
		}
		return fmt.Sprintf("a header or claim has the wrong JSON type (%s)", jsonKind(typ.Value))
	case errors.Is(err, jwt.ErrInvalidType):
		return "a claim has the wrong JSON type"
	default:
		return "token is not a valid JWS compact serialization"
	}
}

// isClaimName reports whether a json field path is one of ours, and so safe
// to log.
func isClaimName(f string) bool {
	f, _, _ = strings.Cut(f, ".")
	switch f {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", claimKeyIDs, claimContentKeyID:
		return true
	}
	return false
}

// jsonKind returns s if it is a JSON value kind as encoding/json reports them.
func jsonKind(s string) string {
	switch s {
	case "string", "number", "bool", "array", "object", "null":
		return s
	}
	if strings.HasPrefix(s, "number") {
		return "number"
	}
	return "unexpected"
}

// isKnownAlg reports whether alg is a registered JOSE algorithm name, and so
// safe to log.
func isKnownAlg(alg string) bool {
	switch alg {
	case "none",
		"HS256", "HS384", "HS512",
		"RS256", "RS384", "RS512",
		"PS256", "PS384", "PS512",
		"ES384", "ES512", "ES256K",
		"EdDSA", "Ed25519", "Ed448":
		return true
	}
	return false
}
