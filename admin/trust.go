package admin

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/auth"
)

// Trust is what GET /api/token-trust reads (auth.Trust).
type Trust interface {
	// Keys returns every trusted token-verification key.
	Keys() []auth.Certificate
	// Sources returns the state of every trust source.
	Sources() []auth.SourceStatus
}

// opTrustList lists the token trust: every key and every source.
var opTrustList = plane.Operation{Name: "token-trust.list", Perm: credentials.Read}

// trustKeyJSON is one trusted key: a certificate (file, Key Vault) or a
// bare key of a key set (JWKS, OpenID Connect), with its source, validity
// and status.
type trustKeyJSON struct {
	Kind          string     `json:"kind"`              // file, keyvault, jwks or oidc
	Source        string     `json:"source"`            // the file, the Key Vault certificate version, the key set URL
	KeyID         string     `json:"keyId,omitempty"`   // the kid that names it: a Key Vault key identifier, a JSON Web Key's kid
	Current       bool       `json:"current,omitempty"` // the Key Vault version signing when a kid names no version
	Issuer        string     `json:"issuer,omitempty"`  // the one iss it verifies (an OpenID Connect issuer's key); absent: any configured issuer
	Subject       string     `json:"subject,omitempty"`
	X5T           string     `json:"x5t,omitempty"`    // certificates: base64url SHA-1
	SHA256        string     `json:"sha256,omitempty"` // certificates: hex SHA-256 of the DER certificate
	JWKThumbprint string     `json:"jwkThumbprint"`    // RFC 7638 thumbprint of the public key, base64url
	NotBefore     *time.Time `json:"notBefore"`        // null: no bound (a bare key)
	NotAfter      *time.Time `json:"notAfter"`
	Status        string     `json:"status"` // valid, expired or not_yet_valid, with the token leeway
}

// trustSourceJSON is one trust source and how its last loads went.
type trustSourceJSON struct {
	Kind        string     `json:"kind"`
	Name        string     `json:"name"`
	Refresh     string     `json:"refresh,omitempty"` // Go duration; absent for files reloaded on SIGHUP only
	Keys        int        `json:"keys"`              // keys trusted from it now (its last good load)
	Healthy     bool       `json:"healthy"`           // the last attempt succeeded
	LastAttempt *time.Time `json:"lastAttempt"`
	LastSuccess *time.Time `json:"lastSuccess"`
	LastError   string     `json:"lastError,omitempty"`
	Failures    int        `json:"failures"` // failed attempts since the last success
}

// trustJSON is the answer of GET /api/token-trust.
type trustJSON struct {
	Keys    []trustKeyJSON    `json:"keys"`
	Sources []trustSourceJSON `json:"sources"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// tokenTrust serves GET /api/token-trust: every trusted key with its
// source, validity and status, and every source with its last loads.
func (a *api) tokenTrust(*plane.Call) (plane.Answer, error) {
	out := trustJSON{Keys: []trustKeyJSON{}, Sources: []trustSourceJSON{}}
	if a.trust == nil {
		return plane.JSON(http.StatusOK, out), nil
	}
	now := a.now()
	for _, k := range a.trust.Keys() {
		j := trustKeyJSON{Kind: k.Kind, Source: k.Source, KeyID: k.KeyID, Current: k.Current, Issuer: k.Issuer, Subject: k.Subject,
			JWKThumbprint: k.JWKThumbprint(), NotBefore: timePtr(k.NotBefore), NotAfter: timePtr(k.NotAfter),
			Status: k.Status(now, a.leeway)}
		if j.Kind == "" {
			j.Kind = auth.KindFile
		}
		if k.SHA256 != ([32]byte{}) {
			j.X5T, j.SHA256 = k.X5T(), hex.EncodeToString(k.SHA256[:])
		}
		out.Keys = append(out.Keys, j)
	}
	for _, s := range a.trust.Sources() {
		j := trustSourceJSON{Kind: s.Kind, Name: s.Name, Keys: s.Keys, Healthy: s.Healthy(), LastAttempt: timePtr(s.LastAttempt),
			LastSuccess: timePtr(s.LastSuccess), LastError: s.LastError, Failures: s.Failures}
		if s.Refresh > 0 {
			j.Refresh = s.Refresh.String()
		}
		out.Sources = append(out.Sources, j)
	}
	return plane.JSON(http.StatusOK, out), nil
}
