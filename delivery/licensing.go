package delivery

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/httpedge"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/playready"
)

// The W3C EME ClearKey session types (https://www.w3.org/TR/encrypted-media/#clear-key).
const (
	sessionTemporary  = "temporary"
	sessionPersistent = "persistent-license"
)

// clearKeyRequest is the license request Chromium's and Firefox's ClearKey
// CDMs put in the MediaKeyMessageEvent: {"kids":["<base64url>"],"type":"temporary"}.
type clearKeyRequest struct {
	KIDs []string `json:"kids"`
	Type string   `json:"type"`
}

// clearKey serves POST /clearkey/license: the token, then the request, then
// every KID's grant and every key (entitle). Any
// refusal refuses the whole request: a partial license would leave a player
// with audio and no video, which is harder to diagnose than an error.
func (s *server) clearKey(c echo.Context) error {
	claims, err := s.authenticate(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req clearKeyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return &requestError{reason: reasonInvalidBody, detail: `the body must be a ClearKey license request: {"kids":["<base64url key ID>"],"type":"temporary"}`, err: err}
	}
	switch req.Type {
	case "":
		req.Type = sessionTemporary
	case sessionTemporary:
	case sessionPersistent:
		if !s.persistent {
			return errPersistentDisabled
		}
	default:
		return &requestError{reason: reasonSessionType, detail: `"type" must be "temporary" or "persistent-license"`}
	}
	if len(req.KIDs) == 0 {
		return &requestError{reason: reasonMissingKID, detail: `"kids" must name at least one key ID (base64url, as the CDM sends them)`}
	}
	if len(req.KIDs) > s.maxKIDs {
		return &requestError{reason: reasonTooManyKIDs, detail: fmt.Sprintf("at most %d key IDs per license request", s.maxKIDs)}
	}
	ids := make([]keystore.KeyID, 0, len(req.KIDs))
	for _, k := range req.KIDs {
		id, err := decodeKID(k)
		if err != nil {
			return &requestError{reason: reasonInvalidKID, detail: "every entry of \"kids\" must be the base64url encoding of a 16-byte key ID", err: err}
		}
		ids = appendUnique(ids, id)
	}
	keys, err := s.entitle(c.Request().Context(), &claims, ids)
	if err != nil {
		return &claimsError{err: err, claims: claims, asked: ids}
	}
	defer wipe(keys)
	if err := s.countUse(c, &claims); err != nil {
		return &claimsError{err: err, claims: claims, asked: ids}
	}
	s.metrics.keysDelivered("clearkey", len(keys))
	s.metrics.license("clearkey", "issued")
	lic := clearKeyLicense(keys, req.Type)
	defer clear(lic)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, lic)
}

// decodeKID reads a key ID as the CDM sends it: base64url without padding.
// Padding and the standard alphabet (which some older players send) are
// accepted too.
func decodeKID(s string) (keystore.KeyID, error) {
	var id keystore.KeyID
	s = strings.TrimRight(s, "=")
	enc := base64.RawURLEncoding
	if strings.ContainsAny(s, "+/") {
		enc = base64.RawStdEncoding
	}
	// The errors quote a short, redacted prefix: a body is client input,
	// and a token pasted where a KID belongs must not reach the log.
	if enc.DecodedLen(len(s)) != len(id) {
		return id, fmt.Errorf("delivery: key ID %q (%d characters) is not 16 bytes", httpedge.Quote(s, 24), len(s))
	}
	if _, err := enc.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("delivery: key ID %q is not base64url: %w", httpedge.Quote(s, 24), err)
	}
	return id, nil
}

// clearKeyLicense renders the ClearKey license, a JSON Web Key set with
// base64url values without padding (Chromium's CDM refuses padding):
// {"keys":[{"kty":"oct","kid":"...","k":"..."}],"type":"temporary"}.
// It is built by hand so that the key material lives in one buffer the
// caller can wipe.
func clearKeyLicense(keys []keystore.Key, sessionType string) []byte {
	enc := base64.RawURLEncoding
	b := make([]byte, 0, 32+len(sessionType)+len(keys)*64)
	b = append(b, `{"keys":[`...)
	for i := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"kty":"oct","kid":"`...)
		b = enc.AppendEncode(b, keys[i].ID[:])
		b = append(b, `","k":"`...)
		b = enc.AppendEncode(b, keys[i].Value[:])
		b = append(b, `"}`...)
	}
	b = append(b, `],"type":"`...)
	b = append(b, sessionType...)
	return append(b, `"}`...)
}

// license serves the license endpoints of the systems behind a
// LicenseIssuer: the same token, grant and key checks as every other
// endpoint, then the issuer.
func (s *server) license(sys System) echo.HandlerFunc {
	issuer := s.issuers[sys]
	_, stub := issuer.(StubIssuer)
	name := string(sys)
	return func(c echo.Context) error {
		claims, err := s.authenticate(c)
		if err != nil {
			return err
		}
		body, err := readBody(c)
		if err != nil {
			return err
		}
		ids, err := s.licenseKIDs(c, sys, issuer, body)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.issueTimeout)
		defer cancel()
		keys, err := s.entitle(ctx, &claims, ids)
		if err != nil {
			return &claimsError{err: err, claims: claims, asked: ids}
		}
		defer wipe(keys)
		if err := s.countUse(c, &claims); err != nil {
			return &claimsError{err: err, claims: claims, asked: ids}
		}
		lic, err := issuer.Issue(ctx, &LicenseRequest{
			System:      sys,
			Challenge:   body,
			ContentType: c.Request().Header.Get(echo.HeaderContentType),
			Keys:        keys,
			Claims:      claims,
			RequestID:   requestID(c),
		})
		if err != nil {
			s.metrics.license(name, "failed")
			var le *LicenseError
			if errors.As(err, &le) && le.Status >= 400 && le.Status < 500 {
				return err
			}
			return &issuerError{system: sys, err: err}
		}
		if lic == nil {
			s.metrics.license(name, "failed")
			return &issuerError{system: sys, err: errors.New("issuer returned no license")}
		}
		if stub {
			s.metrics.license(name, "stub")
		} else {
			s.metrics.license(name, "issued")
			s.metrics.keysDelivered(name, len(keys))
		}
		h := c.Response().Header()
		for k, vs := range lic.Header {
			k = http.CanonicalHeaderKey(k)
			// A license is never cached, and CORS is this plane's to answer.
			if k == "Cache-Control" || strings.HasPrefix(k, "Access-Control-") {
				continue
			}
			h[k] = vs
		}
		status := lic.Status
		if status == 0 {
			status = http.StatusOK
		}
		ct := lic.ContentType
		if ct == "" {
			ct = echo.MIMEOctetStream
		}
		return c.Blob(status, ct, lic.Body)
	}
}

// licenseKIDs finds the key IDs a license request asks for: the kid query
// parameters (repeated or comma-separated; the AMS form /Widevine/?kid=),
// else what the issuer reads from the challenge, else, for PlayReady, the
// KIDs in the challenge's WRMHEADER.
func (s *server) licenseKIDs(c echo.Context, sys System, issuer LicenseIssuer, body []byte) ([]keystore.KeyID, error) {
	var ids []keystore.KeyID
	for name, vs := range c.QueryParams() {
		if !strings.EqualFold(name, "kid") {
			continue
		}
		for _, v := range vs {
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part == "" {
					continue
				}
				id, err := keystore.ParseKeyID(part)
				if err != nil {
					return nil, err
				}
				ids = appendUnique(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		var err error
		switch r, ok := issuer.(KeyIDReader); {
		case ok:
			ids, err = r.KeyIDs(body)
		case sys == PlayReady:
			var kids [][16]byte
			kids, err = playready.HeaderKIDs(body)
			for _, id := range kids {
				ids = append(ids, keystore.KeyID(id))
			}
		}
		if err != nil {
			return nil, &requestError{reason: reasonInvalidChallenge, detail: fmt.Sprintf("the key IDs could not be read from the %s challenge; name them with ?kid=", sys), err: err}
		}
	}
	if len(ids) == 0 {
		return nil, &requestError{reason: reasonMissingKID, detail: fmt.Sprintf("name the keys with ?kid=<KID> (repeatable), e.g. /%s/license?kid=0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f", sys)}
	}
	if len(ids) > s.maxKIDs {
		return nil, &requestError{reason: reasonTooManyKIDs, detail: fmt.Sprintf("at most %d key IDs per license request", s.maxKIDs)}
	}
	return ids, nil
}

// entitle checks that the token grants every key, and reads every key. It
// refuses the whole request, naming the KIDs: 403 for the ones not
// granted, 404 for the ones not stored, 403 first. The grants follow
// grantedKey: a token without content_ids is checked from the token alone,
// before the store is asked; with content_ids, every key is read, and a
// KID the token does not name is granted when its key is recorded under
// one of the contents, and refused alike (403, listed in kids) when it is
// recorded under another content or not stored at all.
func (s *server) entitle(ctx context.Context, claims *auth.Claims, ids []keystore.KeyID) ([]keystore.Key, error) {
	var refused []keystore.KeyID
	if len(claims.ContentIDs) == 0 {
		for _, id := range ids {
			if !claims.Grants(id) {
				refused = append(refused, id)
			}
		}
		if len(refused) > 0 {
			return nil, &kidsError{err: errNotGranted, kids: refused}
		}
	}
	keys := make([]keystore.Key, 0, len(ids))
	var missing []keystore.KeyID
	for _, id := range ids {
		byKID := claims.Grants(id)
		k, err := s.keys.Get(ctx, id)
		switch {
		case err == nil && (byKID || claims.GrantsContent(k.Assets)):
			keys = append(keys, k)
		case err == nil:
			clear(k.Value[:])
			refused = append(refused, id)
		case errors.Is(err, keystore.ErrNotFound) && byKID:
			missing = append(missing, id)
		case errors.Is(err, keystore.ErrNotFound):
			refused = append(refused, id)
		default:
			wipe(keys)
			return nil, err
		}
	}
	switch {
	case len(refused) > 0:
		wipe(keys)
		return nil, &kidsError{err: errNotGranted, kids: refused}
	case len(missing) > 0:
		wipe(keys)
		return nil, &kidsError{err: keystore.ErrNotFound, kids: missing}
	}
	return keys, nil
}

// readBody reads the whole request body (already capped by bodyLimit).
func readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, echo.ErrStatusRequestEntityTooLarge
	}
	if err != nil {
		// The client went away mid-body.
		return nil, &requestError{reason: reasonInvalidBody, detail: "the request body could not be read", err: err}
	}
	return b, nil
}

func appendUnique(ids []keystore.KeyID, id keystore.KeyID) []keystore.KeyID {
	for _, have := range ids {
		if have == id {
			return ids
		}
	}
	return append(ids, id)
}

// wipe clears the key material of keys.
func wipe(keys []keystore.Key) {
	for i := range keys {
		clear(keys[i].Value[:])
	}
}

const defaultIssueTimeout = 10 * time.Second
