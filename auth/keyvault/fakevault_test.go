package keyvault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// The seed's names (seed 000: the token certificate as Key Vault creates it).
const (
	seedVault   = "mykeys.vault.azure.net"
	seedName    = "content-protection-token-certificate"
	seedVersion = "482cc7716df14955862ea73e773156f1"
	seedCertURL = "https://" + seedVault + "/certificates/" + seedName
	// seedTenant is the tenant the fake vault's challenge names.
	seedTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	fakeToken  = "fake-access-token"
)

// seedGetBody is seed 000's answer to GET /certificates/{name}, as it
// stands.
const seedGetBody = `{
  "id": "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/482cc7716df14955862ea73e773156f1",
  "kid": "https://mykeys.vault.azure.net/keys/content-protection-token-certificate/482cc7716df14955862ea73e773156f1",
  "sid": "https://mykeys.vault.azure.net/secrets/content-protection-token-certificate/482cc7716df14955862ea73e773156f1",
  "x5t": "c1CQpIcz5cAvX4Ds9AcEdgjc0To",
  "cer": "MIIB1zCCAX6gAwIBAgIQb/nGu8bUTdyPOQeaooYBdjAKBggqhkjOPQQDAjAvMS0wKwYDVQQDEyRjb250ZW50LXByb3RlY3Rpb24tdG9rZW4tY2VydGlmaWNhdGUwHhcNMjIxMTA4MTk0MDQ4WhcNMjMxMTA4MTk1MDQ4WjAvMS0wKwYDVQQDEyRjb250ZW50LXByb3RlY3Rpb24tdG9rZW4tY2VydGlmaWNhdGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT4ZrYohm4JtQ/ECZRQtI5XQieFKembGBFasK5wWqJkwWcgXjLOc/UWWa0sP+kSjPhEohYbPExwCMrAxMofnBv1o3wwejAOBgNVHQ8BAf8EBAMCB4AwCQYDVR0TBAIwADAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwHwYDVR0jBBgwFoAU2rb/xVamKl6xUZdzqth2foNr0mwwHQYDVR0OBBYEFNq2/8VWpipesVGXc6rYdn6Da9JsMAoGCCqGSM49BAMCA0cAMEQCIGjjUaMsn5KpoDmc0m6Lf0Is6MN8/jNoI6QGidIXCeH3AiBrRrtr998PsZVs9m7nAaTwNfOuVe/OgS7tEvyGdVxzJg==",
  "attributes": {
    "enabled": true,
    "nbf": 1667936448,
    "exp": 1699473048,
    "created": 1667937048,
    "updated": 1667937048,
    "recoveryLevel": "Recoverable",
    "recoverableDays": 90
  },
  "policy": {
    "id": "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/policy",
    "key_props": {
      "exportable": true,
      "kty": "EC",
      "key_size": 256,
      "reuse_key": false,
      "crv": "P-256"
    },
    "secret_props": {
      "contentType": "application/x-pkcs12"
    },
    "x509_props": {
      "subject": "CN=content-protection-token-certificate",
      "ekus": [
        "1.3.6.1.5.5.7.3.1",
        "1.3.6.1.5.5.7.3.2"
      ],
      "key_usage": [
        "digitalSignature"
      ],
      "validity_months": 12,
      "basic_constraints": {
        "ca": false
      }
    },
    "lifetime_actions": [
      {
        "trigger": {
          "lifetime_percentage": 80
        },
        "action": {
          "action_type": "AutoRenew"
        }
      }
    ],
    "issuer": {
      "name": "Self"
    },
    "attributes": {
      "enabled": true,
      "created": 1666977950,
      "updated": 1667937031
    }
  },
  "pending": {
    "id": "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/pending"
  }
}`

// seedPendingBody is seed 000's 202 Accepted answer to the create, as it
// stands: a certificate operation, no cer.
const seedPendingBody = `{
  "id": "https://mykeys.vault.azure.net/certificates/content-protection-token-certificate/pending",
  "issuer": {
    "name": "Self"
  },
  "csr": "MIIBNjCB3AIBADAvMS0wKwYDVQQDEyRjb250ZW50LXByb3RlY3Rpb24tdG9rZW4tY2VydGlmaWNhdGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT4ZrYohm4JtQ/ECZRQtI5XQieFKembGBFasK5wWqJkwWcgXjLOc/UWWa0sP+kSjPhEohYbPExwCMrAxMofnBv1oEswSQYJKoZIhvcNAQkOMTwwOjAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCMAkGA1UdEwQCMAAwCgYIKoZIzj0EAwIDSQAwRgIhAM2VhBTFh6PKYmhNNmV1RH7DsfX2M1BNTXZ84ievp6WWAiEA//uY8ey5OlYyUSNIrTp8O70vL8eSqUiiPn4kYBYFHhc=",
  "cancellation_requested": false,
  "status": "inProgress",
  "status_details": "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.",
  "request_id": "9d2e1a1e868647f49dfcd73b496f5ab9"
}`

// seedX5T is the seed certificate's SHA-1 thumbprint, as Key Vault reports it.
const seedX5T = "c1CQpIcz5cAvX4Ds9AcEdgjc0To"

// fakeVersion is one version of the certificate in the fake vault.
type fakeVersion struct {
	id      string
	enabled bool
	nbf     time.Time
	exp     time.Time
	der     []byte // nil: pending (GET answers the operation, no cer)
	body    string // the GET body as it stands, when set (the seed's)
	key     *ecdsa.PrivateKey
}

// fakeVault is a local Azure Key Vault speaking the certificate REST API
// (the JSON shapes of seed 000) over TLS, at the seed's host name: the
// client's dialer sends every connection to it. Requests without the
// bearer token get Key Vault's challenge first.
type fakeVault struct {
	t      testing.TB
	srv    *httptest.Server
	client *http.Client

	mu       sync.Mutex
	versions []*fakeVersion
	fail     int // status to answer every request with (0: none)
	failCode string
	requests []string // "METHOD path auth?" of every request, in order
	pageSize int      // versions per page of the listing
}

func newFakeVault(t testing.TB) *fakeVault {
	t.Helper()
	ca, caKey := newCA(t)
	leaf := newLeaf(t, ca, caKey, seedVault, "*.vault.azure.net")
	v := &fakeVault{t: t, pageSize: 2}
	v.srv = httptest.NewUnstartedServer(http.HandlerFunc(v.serve))
	v.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
	v.srv.StartTLS()
	t.Cleanup(v.srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	addr := v.srv.Listener.Addr().String()
	v.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		// Every host name resolves to the fake vault on loopback.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(v.client.CloseIdleConnections)
	return v
}

func (v *fakeVault) add(fv *fakeVersion) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.versions = append(v.versions, fv)
}

func (v *fakeVault) setFailure(status int, code string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fail, v.failCode = status, code
}

func (v *fakeVault) log() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.requests...)
}

func (v *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	authed := r.Header.Get("Authorization") == "Bearer "+fakeToken
	v.requests = append(v.requests, fmt.Sprintf("%s %s %t", r.Method, r.URL.Path, authed))
	if r.Host != seedVault {
		http.Error(w, "wrong host "+r.Host, http.StatusBadRequest)
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		v.kvError(w, http.StatusBadRequest, "BadParameter", "api-version is required")
		return
	}
	if !authed {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/`+seedTenant+`", resource="https://vault.azure.net"`)
		v.kvError(w, http.StatusUnauthorized, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	if v.fail != 0 {
		v.kvError(w, v.fail, v.failCode, "the fake vault fails on purpose")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 3 || parts[0] != "certificates" || parts[1] != seedName {
		v.kvError(w, http.StatusNotFound, "CertificateNotFound", "A certificate with (name/id) "+r.URL.Path+" was not found in this key vault.")
		return
	}
	if parts[2] == "versions" {
		v.list(w, r)
		return
	}
	for _, fv := range v.versions {
		if fv.id == parts[2] {
			v.get(w, fv)
			return
		}
	}
	v.kvError(w, http.StatusNotFound, "CertificateNotFound", "A certificate with (name/id) "+seedName+"/"+parts[2]+" was not found in this key vault.")
}

func (v *fakeVault) kvError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func certID(version string) string {
	return "https://" + seedVault + "/certificates/" + seedName + "/" + version
}

func attributes(fv *fakeVersion) map[string]any {
	a := map[string]any{"enabled": fv.enabled, "created": fv.nbf.Unix(), "updated": fv.nbf.Unix(),
		"recoveryLevel": "Recoverable", "recoverableDays": 90}
	if fv.der != nil {
		a["nbf"], a["exp"] = fv.nbf.Unix(), fv.exp.Unix()
	}
	return a
}

func x5t(der []byte) string {
	sum := sha1.Sum(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// list answers GET /certificates/{name}/versions, paged with nextLink.
func (v *fakeVault) list(w http.ResponseWriter, r *http.Request) {
	start := 0
	if s := r.URL.Query().Get("$skiptoken"); s != "" {
		_, _ = fmt.Sscan(s, &start)
	}
	end := min(start+v.pageSize, len(v.versions))
	items := []map[string]any{}
	for _, fv := range v.versions[start:end] {
		item := map[string]any{"id": certID(fv.id), "attributes": attributes(fv), "tags": map[string]string{}}
		if fv.der != nil {
			item["x5t"] = x5t(fv.der)
		}
		items = append(items, item)
	}
	var next any
	if end < len(v.versions) {
		next = fmt.Sprintf("https://%s/certificates/%s/versions?api-version=7.6&$skiptoken=%d", seedVault, seedName, end)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"value": items, "nextLink": next})
}

// get answers GET /certificates/{name}/{version} in seed 000's shape; a
// pending version answers the pending operation of seed 000.
func (v *fakeVault) get(w http.ResponseWriter, fv *fakeVersion) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case fv.body != "":
		_, _ = w.Write([]byte(fv.body))
	case fv.der == nil:
		_, _ = w.Write([]byte(seedPendingBody))
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id":         certID(fv.id),
			"kid":        "https://" + seedVault + "/keys/" + seedName + "/" + fv.id,
			"sid":        "https://" + seedVault + "/secrets/" + seedName + "/" + fv.id,
			"x5t":        x5t(fv.der),
			"cer":        base64.StdEncoding.EncodeToString(fv.der),
			"attributes": attributes(fv),
			"policy":     map[string]any{"id": "https://" + seedVault + "/certificates/" + seedName + "/policy"},
		})
	}
}

// staticCredential is the test's Azure credential: it hands out a fixed
// token for the scope the vault's challenge names, in its tenant.
type staticCredential struct {
	mu    sync.Mutex
	asked []policy.TokenRequestOptions
}

func (c *staticCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, o)
	return azcore.AccessToken{Token: fakeToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake vault test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func newLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// newTokenCert makes a token-signing certificate as Key Vault's policy of
// seed 000 does: EC P-256, CN=content-protection-token-certificate, valid
// from nbf to exp.
func newTokenCert(t testing.TB, serial int64, nbf, exp time.Time) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: seedName},
		NotBefore: nbf, NotAfter: exp, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}
