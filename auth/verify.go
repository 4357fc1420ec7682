package auth

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

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
	// claimContentIDs grants every key recorded under the contents it
	// lists (their assets), an array of content ID strings: one token for
	// a live stream whose keys rotate.
	claimContentIDs = "content_ids"
)

// MaxContentIDs is the most entries a content_ids claim may hold; more
// refuses the token as malformed.
const MaxContentIDs = 64

// Claims is what a verified token says.
type Claims struct {
	Subject   string     // sub
	Issuer    string     // iss, one of Options.Issuers
	IssuedAt  time.Time  // iat; zero if absent
	ExpiresAt time.Time  // exp
	KeyIDs    [][16]byte // keys granted, parsed with Options.ParseKeyID, de-duplicated: the contentkeyidentifier claim, then "kids" in order
	// ContentIDs are the contents whose keys the token grants (the
	// content_ids claim, de-duplicated, in order): every key whose record
	// lists one of them among its assets. Unlike KeyIDs this cannot be
	// decided from the token alone; see GrantsContent.
	ContentIDs []string
	Unbound    bool // the token names no key and no content, and Options.AllowUnbound is set: it grants every key
	// SigningKey is the SHA-256 thumbprint, in lower-case hex, of the
	// certificate whose key verified the token.
	SigningKey string
	// MaxUses is the token's replay limit, the AMS claim
	// urn:microsoft:azure:mediaservices:maxuses: how many key or license
	// answers it may get, across every server (0: no limit).
	MaxUses int
	// TokenDigest identifies the token for its replay counter when MaxUses
	// is set (zero otherwise): the SHA-256 of its signing input
	// (header.payload), which the signer signed. It is not the token and
	// does not let anyone rebuild it.
	TokenDigest [32]byte
}

// Grants reports whether the token grants the content key kid from the
// token alone: it is unbound, or kid is one of KeyIDs. A token that names
// no key and no content, verified without Options.AllowUnbound, grants
// nothing; so does one whose "kids" claim is an empty array. A kid it does
// not grant may still be granted by content (GrantsContent), once the
// key's record is known.
func (c *Claims) Grants(kid [16]byte) bool {
	return c.Unbound || slices.Contains(c.KeyIDs, kid)
}

// GrantsContent reports whether the token grants a key whose record lists
// assets: one of them is one of ContentIDs (compared exactly, as content
// IDs are stored). It is false for a token without content_ids.
func (c *Claims) GrantsContent(assets []string) bool {
	for _, a := range assets {
		if slices.Contains(c.ContentIDs, a) {
			return true
		}
	}
	return false
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
	// AllowUnbound makes a token that names no content key and no content
	// (none of contentkeyidentifier, kids, content_ids) grant every key.
	// Default false: such a token verifies but grants nothing.
	AllowUnbound bool
	// RequireKeyID refuses (unknown_signing_key) a token whose header names
	// no certificate (no x5t, x5t#S256 or kid). Default false: such a
	// token is checked against each currently valid certificate in turn,
	// one signature check per certificate.
	RequireKeyID bool
	// ParseKeyID is required. It parses one content key ID string from the
	// token (the caller's canonical UUID parser). A token with a key ID it
	// rejects is malformed. Its error is not passed on, since it may quote
	// its input.
	ParseKeyID func(string) ([16]byte, error)
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Registerer, when set, gets keydelivery_token_verification_duration_seconds:
	// the time of each full verification (a verified-token cache hit is not
	// one, and costs no clock read), and
	// keydelivery_token_signature_checks_total: the ECDSA checks made (one
	// per token that names its certificate; up to one per valid
	// certificate for a token that names none).
	Registerer prometheus.Registerer
}

// Verifier checks tokens against a Trust. It is safe for concurrent use.
type Verifier struct {
	trust        *Trust
	issuers      []string
	audience     string
	requireKeyID bool
	leeway       time.Duration
	maxLifetime  time.Duration
	allowUnbound bool
	parseKeyID   func(string) ([16]byte, error)
	now          func() time.Time
	duration     prometheus.Histogram // nil without Options.Registerer
	sigChecks    prometheus.Counter   // always set; registered with Options.Registerer
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
	sigChecks := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keydelivery_token_signature_checks_total",
		Help: "ECDSA signature checks made by token verification: one per token that names its certificate, up to one per currently valid certificate for a token that names none.",
	})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(sigChecks); err != nil {
			return nil, fmt.Errorf("auth: new verifier: %w", err)
		}
	}
	return &Verifier{
		duration:  duration,
		sigChecks: sigChecks,
		trust:     trust,
		// Security invariant: only ES256 is ever accepted (parse), and the
		// claims are validated only after the signature has verified.
		issuers:      slices.Clone(opts.Issuers),
		audience:     opts.Audience,
		requireKeyID: opts.RequireKeyID,
		leeway:       opts.Leeway,
		maxLifetime:  opts.MaxLifetime,
		allowUnbound: opts.AllowUnbound,
		parseKeyID:   opts.ParseKeyID,
		now:          opts.Now,
	}, nil
}

// Verify checks raw, a JWS compact token, and returns what it says. On
// refusal the error is always an *Error, with the Facts that explain it.
//
// Order: size; structure, base64 and JSON (names matched exactly, a name
// given twice or a case variant of a name this package reads refused,
// dates numbers only); alg must be ES256; the signing certificate is chosen
// from the header and must be within its validity window; the signature
// (64 bytes); then, only once the signature has verified, exp, nbf,
// iat, aud, iss (one of Options.Issuers, and the key's own issuer when the
// key is bound to one), lifetime and the granted key IDs and contents.
func (v *Verifier) Verify(raw string) (Claims, error) {
	c, _, _, e := v.verify(raw)
	if e != nil {
		return c, e
	}
	return c, nil
}

// observe records the duration of a verification that started at start.
func (v *Verifier) observe(start time.Time) {
	if v.duration != nil {
		v.duration.Observe(time.Since(start).Seconds())
	}
}

// verify is Verify that also says which trust set and certificate verified
// the token, for the cache.
func (v *Verifier) verify(raw string) (Claims, *trustSet, *trusted, *Error) {
	if v.duration != nil {
		defer v.observe(time.Now())
	}
	now := v.now()
	// Security invariant: nothing is parsed before this check.
	if len(raw) > MaxTokenSize {
		return Claims{}, nil, nil, refuse(ReasonTooLarge, fmt.Sprintf("token is %d bytes, limit %d", len(raw), MaxTokenSize)).with(&Facts{Now: now})
	}
	set := v.trust.set.Load() // one snapshot for the whole verification

	tok, e := parse(raw)
	if e != nil {
		return Claims{}, nil, nil, e.with(&Facts{Now: now})
	}
	facts := &Facts{Now: now, Thumbprint: askedFor(&tok.header)}
	if tok.header.crit {
		return Claims{}, nil, nil, refuse(ReasonMalformed, "crit header is not supported").with(facts)
	}
	if e := checkSignatureForm(tok.sig); e != nil {
		return Claims{}, nil, nil, e.with(facts)
	}
	digest := tok.digest()
	used, e := v.selectKey(set, &tok.header, tok.claims.issuer, &digest, tok.sig, now)
	if e != nil {
		return Claims{}, nil, nil, e.with(facts)
	}

	// The signature has verified: the claims are the signer's.
	tc := &tok.claims
	facts.verified(tc)
	if e := v.validate(tc, now); e != nil {
		switch e.Reason {
		case ReasonWrongIssuer:
			facts.ExpectedIssuers = v.issuers
		case ReasonWrongAudience:
			facts.ExpectedAudience = v.audience
		}
		return Claims{}, nil, nil, e.with(facts)
	}
	// Security invariant: a key bound to an issuer (an OpenID Connect
	// issuer's key) verifies only that issuer's tokens. Without this, a
	// key fetched from issuer A would sign for issuer B, or for the
	// issuer of the certificate files, whenever both are configured: any
	// party that controls A's keys (A's operator, a tenant of a shared
	// provider) could mint tokens in B's name. The refusal is
	// wrong_issuer: the key is trusted and the signature is good; what is
	// wrong is the iss the signer claimed, and the facts name the one
	// issuer this key speaks for.
	if bound := used.cert.Issuer; bound != "" && tc.issuer != bound {
		facts.ExpectedIssuers = []string{bound}
		return Claims{}, nil, nil, refuse(ReasonWrongIssuer, "iss claim is not the issuer of the key that verified the token").with(facts)
	}
	c := Claims{
		Subject:    tc.subject,
		Issuer:     tc.issuer,
		ExpiresAt:  *tc.exp, // validate requires it
		SigningKey: used.sha256Hex,
		MaxUses:    tc.maxUses,
	}
	if tc.iat != nil {
		c.IssuedAt = *tc.iat
	}
	if v.maxLifetime > 0 {
		if tc.iat == nil {
			return Claims{}, nil, nil, refuse(ReasonMissingClaim, "iat claim is required when a maximum lifetime is set").with(facts)
		}
		if life := c.ExpiresAt.Sub(c.IssuedAt); life > v.maxLifetime {
			return Claims{}, nil, nil, refuse(ReasonLifetimeTooLong, fmt.Sprintf("exp - iat is %v, limit %v", life, v.maxLifetime)).with(facts)
		}
	}
	if e := v.grants(&c, tc); e != nil {
		return Claims{}, nil, nil, e.with(facts)
	}
	if c.MaxUses > 0 {
		// The replay counter's key: what the signer signed, so that no
		// other encoding of the token counts as another token.
		c.TokenDigest = digest
	}
	return c, set, used, nil
}

// validate checks the claims of a token whose signature has verified, in
// this order (the first failure is the reason): exp present, exp, nbf, iat
// (each with the leeway), aud, iss.
func (v *Verifier) validate(tc *payload, now time.Time) *Error {
	if tc.exp == nil {
		return refuse(ReasonMissingClaim, "exp claim is missing")
	}
	if !now.Before(tc.exp.Add(v.leeway)) {
		return refuse(ReasonExpired, "exp is in the past beyond the leeway")
	}
	if tc.nbf != nil && now.Before(tc.nbf.Add(-v.leeway)) {
		return refuse(ReasonNotYetValid, "nbf is in the future beyond the leeway")
	}
	if tc.iat != nil && now.Before(tc.iat.Add(-v.leeway)) {
		return refuse(ReasonNotYetValid, "iat is in the future beyond the leeway")
	}
	if !tc.hasAudience || len(tc.audience) == 0 || len(tc.audience) == 1 && tc.audience[0] == "" {
		return refuse(ReasonWrongAudience, "aud claim is missing")
	}
	if !slices.Contains(tc.audience, v.audience) {
		return refuse(ReasonWrongAudience, "aud claim does not contain the audience")
	}
	if !slices.Contains(v.issuers, tc.issuer) {
		if tc.issuer == "" {
			return refuse(ReasonWrongIssuer, "iss claim is missing")
		}
		return refuse(ReasonWrongIssuer, "iss claim is not a configured issuer")
	}
	return nil
}

// grants fills in KeyIDs, ContentIDs and Unbound.
//
// Security invariant: a token is unbound only when it carries none of the
// granting claims; a token that names contents (even an empty list) is
// bound to them, never widened to every key by Options.AllowUnbound.
func (v *Verifier) grants(c *Claims, tc *payload) *Error {
	if tc.contentKeyID == nil && tc.keyIDs == nil && tc.contentIDs == nil {
		c.Unbound = v.allowUnbound
		return nil
	}
	if tc.contentIDs != nil {
		ids := *tc.contentIDs
		if len(ids) > MaxContentIDs {
			return refuse(ReasonMalformed, fmt.Sprintf("%s claim has %d entries, limit %d", claimContentIDs, len(ids), MaxContentIDs))
		}
		c.ContentIDs = make([]string, 0, len(ids))
		for i, s := range ids {
			if s == "" {
				return refuse(ReasonMalformed, fmt.Sprintf("%s[%d] is empty", claimContentIDs, i))
			}
			if !slices.Contains(c.ContentIDs, s) {
				c.ContentIDs = append(c.ContentIDs, s)
			}
		}
	}
	if tc.contentKeyID == nil && tc.keyIDs == nil {
		return nil
	}
	n := 0
	if tc.contentKeyID != nil {
		n++
	}
	if tc.keyIDs != nil {
		n += len(*tc.keyIDs)
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
	if tc.contentKeyID != nil && !add(*tc.contentKeyID) {
		return refuse(ReasonMalformed, claimContentKeyID+" claim is not a valid key ID")
	}
	if tc.keyIDs != nil {
		for i, s := range *tc.keyIDs {
			if !add(s) {
				return refuse(ReasonMalformed, fmt.Sprintf("%s[%d] is not a valid key ID", claimKeyIDs, i))
			}
		}
	}
	return nil
}

// selectKey picks the certificate the header names and checks the
// signature with it; when the header names none, it tries each currently
// valid certificate once (so a token costs at most one signature check per
// valid certificate), unless Options.RequireKeyID refuses such tokens.
//
// Security invariant: a certificate is only ever taken from set, never from
// the token (x5c and jwk headers are ignored).
func (v *Verifier) selectKey(set *trustSet, h *header, iss string, digest *[32]byte, sig []byte, now time.Time) (*trusted, *Error) {
	c, named, e := lookupHeader(set, h, iss)
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
		v.sigChecks.Inc()
		if !verifySignature(c.cert.PublicKey, digest, sig) {
			return nil, refuse(ReasonBadSignature, "signature does not verify")
		}
		return c, nil
	}
	if v.requireKeyID {
		return nil, refuse(ReasonUnknownSigningKey, "the header names no certificate (x5t, x5t#S256 or kid) and this server requires one")
	}
	valid := 0
	for _, c := range set.certs {
		if c.cert.Status(now, v.leeway) != statusValid {
			continue
		}
		valid++
		v.sigChecks.Inc()
		if verifySignature(c.cert.PublicKey, digest, sig) {
			return c, nil
		}
	}
	if valid == 0 {
		return nil, refuse(ReasonUnknownSigningKey, "the header names no certificate and no trusted certificate is currently valid")
	}
	return nil, refuse(ReasonBadSignature, "the header names no certificate and the signature verifies with no currently valid certificate")
}

// lookupHeader resolves x5t, x5t#S256 or kid. named is false when the header
// has none of them. x5t and x5t#S256 take precedence over kid; when both are
// present they must name the same certificate. A kid that several keys
// share is resolved with the token's (unverified) iss: see lookupKeyID.
func lookupHeader(set *trustSet, h *header, iss string) (c *trusted, named bool, e *Error) {
	var bySHA1, bySHA256 *trusted
	if h.x5t != nil {
		var sum [20]byte
		if e := decodeThumbprint(*h.x5t, sum[:], "x5t"); e != nil {
			return nil, true, e
		}
		if bySHA1 = set.bySHA1[sum]; bySHA1 == nil {
			return nil, true, refuse(ReasonUnknownSigningKey, "x5t header names no trusted certificate")
		}
	}
	if h.x5tS256 != nil {
		var sum [32]byte
		if e := decodeThumbprint(*h.x5tS256, sum[:], "x5t#S256"); e != nil {
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

	if h.kid == nil {
		return nil, false, nil
	}
	s := *h.kid
	// The encodings are told apart by length alone: base64url of 20 and 32
	// bytes is 27 and 43 characters (odd, so never hex), hex is 40 and 64.
	var sha1Sum [20]byte
	var sha256Sum [32]byte
	var found *trusted
	switch len(s) {
	case 27:
		if _, err := segmentEncoding.Decode(sha1Sum[:], []byte(s)); err == nil {
			found = set.bySHA1[sha1Sum]
		}
	case 40:
		if _, err := hex.Decode(sha1Sum[:], []byte(s)); err == nil {
			found = set.bySHA1[sha1Sum]
		}
	case 43:
		if _, err := segmentEncoding.Decode(sha256Sum[:], []byte(s)); err == nil {
			found = set.bySHA256[sha256Sum]
		}
	case 64:
		if _, err := hex.Decode(sha256Sum[:], []byte(s)); err == nil {
			found = set.bySHA256[sha256Sum]
		}
	}
	if found == nil {
		found = set.lookupKeyID(s, iss) // a JWKS kid, or a Key Vault key identifier
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

// isClaimName reports whether s is a claim name this package reads, and so
// safe to log.
func isClaimName(s string) bool { return slices.Contains(knownClaims, s) }

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
