package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TokenClaims is what Signer puts into a token. Empty strings and zero times
// are omitted.
type TokenClaims struct {
	Issuer   string // iss
	Audience string // aud, as a single string
	Subject  string // sub
	// KeyIDs is emitted as the "kids" array claim when non-empty.
	KeyIDs []string
	// ContentIDs is emitted as the "content_ids" array claim when
	// non-empty.
	ContentIDs []string
	// ContentKeyID is emitted as the Azure Media Services claim
	// "urn:microsoft:azure:mediaservices:contentkeyidentifier" when non-empty.
	ContentKeyID string
	IssuedAt     time.Time // iat
	NotBefore    time.Time // nbf
	ExpiresAt    time.Time // exp
	// Extra holds further claims, set last so they override the fields
	// above; a nil value is emitted as JSON null. Tests use it for odd cases.
	Extra map[string]any
}

func (c TokenClaims) mapClaims() jwt.MapClaims {
	m := jwt.MapClaims{}
	setString := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	setTime := func(k string, t time.Time) {
		if !t.IsZero() {
			m[k] = t.Unix()
		}
	}
	setString("iss", c.Issuer)
	setString("aud", c.Audience)
	setString("sub", c.Subject)
	if len(c.KeyIDs) > 0 {
		m[claimKeyIDs] = c.KeyIDs
	}
	if len(c.ContentIDs) > 0 {
		m[claimContentIDs] = c.ContentIDs
	}
	setString(claimContentKeyID, c.ContentKeyID)
	setTime("iat", c.IssuedAt)
	setTime("nbf", c.NotBefore)
	setTime("exp", c.ExpiresAt)
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}

// Signer makes ES256 tokens, for the admin command-line client, tests and the
// load generator. It is safe for concurrent use.
type Signer struct {
	key *ecdsa.PrivateKey
	x5t string // base64url SHA-1 of the certificate; empty if none
}

// NewSigner returns a Signer for key, a P-256 private key. When cert is not
// nil its SHA-1 thumbprint goes into each token's "x5t" header, which is how
// the verifier finds the certificate; NewSigner does not check that cert
// matches key (LoadSigner does).
func NewSigner(key *ecdsa.PrivateKey, cert *x509.Certificate) *Signer {
	s := &Signer{key: key}
	if cert != nil {
		sum := sha1.Sum(cert.Raw)
		s.x5t = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return s
}

// LoadSigner reads a PEM private key ("EC PRIVATE KEY" or PKCS#8 "PRIVATE
// KEY", P-256) and, unless certFile is "", its certificate in any format
// LoadCertificates reads. The certificate must match the key.
func LoadSigner(keyFile, certFile string) (*Signer, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: load signer: %w", err)
	}
	key, err := parsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("auth: load signer: %s: %w", keyFile, err)
	}
	if certFile == "" {
		return NewSigner(key, nil), nil
	}
	data, err = os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("auth: load signer: %w", err)
	}
	certs, err := parseCertificateFile(data, certFile)
	if err != nil {
		return nil, fmt.Errorf("auth: load signer: %s: %w", certFile, err)
	}
	for _, c := range certs {
		if c.PublicKey.Equal(&key.PublicKey) {
			return NewSigner(key, c.Cert), nil
		}
	}
	return nil, fmt.Errorf("auth: load signer: %s: no certificate matches the private key in %s", certFile, keyFile)
}

// parsePrivateKey returns the first EC private key in PEM data. Other blocks,
// such as openssl's "EC PARAMETERS", are skipped. Errors never include key
// material.
func parsePrivateKey(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no EC PRIVATE KEY or PRIVATE KEY pem block")
		}
		var key *ecdsa.PrivateKey
		switch block.Type {
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("EC PRIVATE KEY block does not parse")
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("PRIVATE KEY block does not parse")
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("PRIVATE KEY block holds a %T, want an ECDSA P-256 key", k)
			}
			key = ek
		default:
			continue
		}
		if key.Curve != elliptic.P256() {
			return nil, fmt.Errorf("private key is on %s, want P-256", key.Curve.Params().Name)
		}
		return key, nil
	}
}

// Sign returns an ES256 token carrying c. Its header has "alg", "typ" and,
// if the Signer has a certificate, "x5t".
func (s *Signer) Sign(c TokenClaims) (string, error) {
	return s.SignWithHeader(c, nil)
}

// SignWithHeader is Sign with header fields added or overridden, such as
// "kid" or "x5t#S256"; a nil value removes the field (e.g. "x5t": nil). The
// signature is always ES256, whatever header["alg"] says.
func (s *Signer) SignWithHeader(c TokenClaims, header map[string]any) (string, error) {
	if s == nil || s.key == nil {
		return "", errors.New("auth: sign: no private key")
	}
	if s.key.Curve != elliptic.P256() {
		return "", errors.New("auth: sign: private key is not P-256")
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c.mapClaims())
	if s.x5t != "" {
		tok.Header["x5t"] = s.x5t
	}
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	out, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return out, nil
}
