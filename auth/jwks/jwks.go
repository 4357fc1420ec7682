// Package jwks makes a JSON Web Key Set (RFC 7517) a source of trusted
// token-verification keys (an auth.Source): a key set URL, or an OpenID
// Connect issuer whose discovery document (/.well-known/openid-configuration)
// names the key set (jwks_uri). Identity providers (Microsoft Entra ID,
// Auth0, Keycloak...) roll their keys over by publishing the next one in
// the set first; fetched again in the background and whenever a token
// names an unknown kid (see auth.Trust.Refresh), the rollover needs no
// operator.
//
// Only EC P-256 keys usable for ES256 are trusted (kty EC, crv P-256, use
// absent or "sig", alg absent or "ES256", a kid); every other key is
// ignored with a log line (once per key). Keys are chosen by their kid.
// The keys of an OpenID Connect issuer are bound to it: they verify only
// tokens whose iss is that issuer (auth.Key.Issuer). The keys of a plain
// key set URL are bound to no issuer: they verify the tokens of any
// issuer the server accepts, as certificate files do.
// The JSON Web Keys are read and checked by github.com/MicahParks/jwkset
// (the key set library keyfunc is built on), which stays inside this
// package.
//
// # Trust boundary
//
// The key set's URL is trusted: it must be https (http only on a loopback
// address, for a local sidecar or tests), and an issuer's discovery
// document must name that same issuer. Answers are read up to 1 MiB.
// This package imports auth and nothing else of ours.
package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/keydelivery/keydelivery/auth"
)

// maxBody caps a discovery document and a key set.
const maxBody = 1 << 20

// Options configures a Source: Issuer or URL, not both.
type Options struct {
	// Issuer is an OpenID Connect issuer (https://login.example.com/tenant/v2.0):
	// the key set is the discovery document's jwks_uri.
	Issuer string
	// URL is a key set's URL.
	URL string
	// HTTPClient fetches the documents (default: a client of its own with
	// a 30s timeout).
	HTTPClient *http.Client
	// Log receives the keys ignored, and why (default: discarded).
	Log *slog.Logger
}

// Source is a key set as an auth.Source. It is safe for concurrent use.
type Source struct {
	kind, name string
	issuer     string // "" for a plain key set
	jwksURL    string // "" for an issuer until discovered
	client     *http.Client
	log        *slog.Logger

	mu      sync.Mutex
	ignored map[string]bool // keys already logged as ignored
}

var _ auth.Source = (*Source)(nil)

// New checks o and returns its Source. It makes no request.
func New(o Options) (*Source, error) {
	s := &Source{client: o.HTTPClient, log: o.Log, ignored: map[string]bool{}}
	switch {
	case (o.Issuer == "") == (o.URL == ""):
		return nil, errors.New("jwks: give an issuer or a key set URL")
	case o.Issuer != "":
		if err := CheckURL(o.Issuer); err != nil {
			return nil, fmt.Errorf("jwks: issuer: %w", err)
		}
		s.kind, s.name, s.issuer = auth.KindOIDC, o.Issuer, o.Issuer
	default:
		if err := CheckURL(o.URL); err != nil {
			return nil, fmt.Errorf("jwks: key set URL: %w", err)
		}
		s.kind, s.name, s.jwksURL = auth.KindJWKS, o.URL, o.URL
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return CheckURL(req.URL.String()) // never from https to plain http elsewhere
		}}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// CheckURL accepts an https URL, or an http one whose host is a loopback
// address (localhost, 127.0.0.0/8, ::1), without user, password or
// fragment.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", truncate(s))
	}
	if u.User != nil {
		return errors.New("the URL holds a user or password")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: keys are fetched over https only (http is accepted for a loopback address)", truncate(s))
	}
	return fmt.Errorf("%q: want an https URL", truncate(s))
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Kind implements auth.Source: auth.KindOIDC or auth.KindJWKS.
func (s *Source) Kind() string { return s.kind }

// Name implements auth.Source: the issuer or the key set URL.
func (s *Source) Name() string { return s.name }

// Fetch implements auth.Source: for an issuer, the discovery document
// first (read on every fetch, so a moved jwks_uri is followed), then the
// key set; every usable key, with its kid.
func (s *Source) Fetch(ctx context.Context) ([]auth.Key, error) {
	jwksURL := s.jwksURL
	if s.issuer != "" {
		var err error
		if jwksURL, err = s.discover(ctx); err != nil {
			return nil, err
		}
	}
	body, err := s.get(ctx, jwksURL)
	if err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", jwksURL, err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil || set.Keys == nil {
		return nil, fmt.Errorf("jwks: %s: not a JSON Web Key Set ({\"keys\":[...]})", jwksURL)
	}
	var keys []auth.Key
	seen := map[string]bool{}
	for i, raw := range set.Keys {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(raw, &m); err != nil {
			s.ignore(jwksURL, fmt.Sprintf("#%d", i), "not a JSON Web Key")
			continue
		}
		name := m.KID
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		switch {
		case m.KTY != jwkset.KtyEC || m.CRV != jwkset.CrvP256:
			s.ignore(jwksURL, name, fmt.Sprintf("key type %q (curve %q): only EC P-256 keys (ES256) are used", m.KTY, m.CRV))
			continue
		case m.USE != "" && m.USE != jwkset.UseSig:
			s.ignore(jwksURL, name, fmt.Sprintf("use %q: not a signing key", m.USE))
			continue
		case m.ALG != "" && m.ALG != jwkset.AlgES256:
			s.ignore(jwksURL, name, fmt.Sprintf("alg %q: only ES256 is used", m.ALG))
			continue
		case m.KID == "":
			s.ignore(jwksURL, name, "no kid: keys are chosen by kid")
			continue
		case seen[m.KID]:
			s.ignore(jwksURL, name, "a second key with this kid")
			continue
		}
		// jwkset checks the key: the point is on the curve, and any x5c
		// certificate holds the same key.
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("jwks: %s: key %q: %s", jwksURL, truncate(m.KID), firstLine(err.Error()))
		}
		pub, ok := jwk.Key().(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			s.ignore(jwksURL, name, "not an ECDSA P-256 public key")
			continue
		}
		seen[m.KID] = true
		// An issuer's keys are bound to it (auth.Key.Issuer): they verify
		// only its tokens. A plain key set's keys are bound to none.
		keys = append(keys, auth.Key{PublicKey: pub, KeyID: m.KID, Location: jwksURL, Issuer: s.issuer})
	}
	if len(keys) == 0 {
		s.log.Warn("JSON Web Key Set holds no EC P-256 signing key: no token from it can verify", "source", s.name, "jwks_uri", jwksURL, "keys", len(set.Keys))
	}
	return keys, nil
}

// discover reads the issuer's discovery document and returns its jwks_uri.
func (s *Source) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(s.issuer, "/") + "/.well-known/openid-configuration"
	body, err := s.get(ctx, u)
	if err != nil {
		return "", fmt.Errorf("jwks: OpenID Connect discovery %s: %w", u, err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("jwks: OpenID Connect discovery %s: not a JSON discovery document", u)
	}
	// OpenID Connect Discovery 1.0, 4.3: the document must name the
	// issuer it was fetched for.
	if doc.Issuer != s.issuer {
		return "", fmt.Errorf("jwks: OpenID Connect discovery %s: the document is for issuer %q, not %q", u, truncate(doc.Issuer), s.issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("jwks: OpenID Connect discovery %s: no jwks_uri", u)
	}
	if err := CheckURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("jwks: OpenID Connect discovery %s: jwks_uri: %w", u, err)
	}
	return doc.JWKSURI, nil
}

// get fetches u and returns its body, at most maxBody bytes.
func (s *Source) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, errors.New(firstLine(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %s", firstLine(err.Error()))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("the answer is larger than %d bytes", maxBody)
	}
	return body, nil
}

// ignore logs, once per key, why a key of the set is not used.
func (s *Source) ignore(jwksURL, kid, why string) {
	key := jwksURL + "\x00" + kid + "\x00" + why
	s.mu.Lock()
	logged := s.ignored[key]
	s.ignored[key] = true
	s.mu.Unlock()
	if !logged {
		s.log.Info("JSON Web Key ignored: "+why, "source", s.name, "jwks_uri", jwksURL, "kid", truncate(kid))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return truncate(s)
}
