// Package keyvault makes an Azure Key Vault certificate a live source of
// trusted token-signing certificates (an auth.Source): every enabled
// version of the certificate within its validity window is trusted, so that
// tokens signed before and after an automatic renewal (a certificate policy
// with an AutoRenew lifetime action, as in Key Vault's own example) both
// verify, and a renewal is followed without an operator exporting anything.
//
// It uses the Azure SDK for Go (azcertificates) with azidentity's default
// credential chain: environment (service principal), workload identity,
// managed identity, Azure CLI. The identity needs to read the certificate:
// the Azure RBAC role "Key Vault Certificate User" on the vault or on the
// certificate, or, with access policies, the certificate permissions get
// and list. Only the public certificate is read (never the private key,
// which is a secret).
//
// # Trust boundary
//
// Key Vault is trusted to say which certificates sign tokens: that is the
// point. What it answers is still checked: the thumbprint it reports must be
// the SHA-1 of the certificate it returns, and the key must be ECDSA P-256
// (auth checks that). Errors name the vault URL, the HTTP status and Key
// Vault's error code, never a token or a credential.
//
// The Azure SDK stays inside this package: no exported identifier mentions
// its types. This package imports auth and nothing else of ours.
package keyvault

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"

	"github.com/keydelivery/keydelivery/auth"
)

// Options configures a Source.
type Options struct {
	// CertificateURL names the certificate, without a version:
	// https://<vault>.vault.azure.net/certificates/<name>. Required.
	CertificateURL string
	// HTTPClient carries the requests to Key Vault and to the identity
	// endpoints (default: a client of its own with a 30s timeout).
	HTTPClient *http.Client
	// Log receives the versions skipped, and why (default: discarded).
	Log *slog.Logger
	// Now is the clock that decides which versions are within their
	// validity window (default time.Now).
	Now func() time.Time
	// Leeway widens the validity windows (default auth.DefaultLeeway), as
	// the verifier does.
	Leeway time.Duration
}

// Source is an Azure Key Vault certificate as an auth.Source. It is safe
// for concurrent use.
type Source struct {
	name     string // the configured URL
	vaultURL string // https://<vault host>
	cert     string // the certificate's name
	client   *azcertificates.Client
	log      *slog.Logger
	now      func() time.Time
	leeway   time.Duration

	mu      sync.Mutex
	cache   map[string]*x509.Certificate // version → its certificate (a version's certificate never changes)
	skipped map[string]bool              // versions already logged as skipped
}

var _ auth.Source = (*Source)(nil)

// New returns the Source of o.CertificateURL, authenticated with
// azidentity's default credential chain. It makes no request: the first
// happens in Fetch.
func New(o Options) (*Source, error) {
	var clientOptions azcore.ClientOptions
	if o.HTTPClient != nil {
		clientOptions.Transport = o.HTTPClient
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: clientOptions})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %s: no Azure credential: %w", o.CertificateURL, err)
	}
	return newSource(o, cred, false)
}

// newSource is New with the credential given; tests give a static one.
// skipResourceCheck lets a test vault answer from a host outside Azure.
func newSource(o Options, cred azcore.TokenCredential, skipResourceCheck bool) (*Source, error) {
	vaultURL, name, err := ParseCertificateURL(o.CertificateURL)
	if err != nil {
		return nil, err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Leeway <= 0 {
		o.Leeway = auth.DefaultLeeway
	}
	client, err := azcertificates.NewClient(vaultURL, cred, &azcertificates.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: o.HTTPClient,
			// The Trust retries a failed fetch itself, with backoff: one
			// quick retry here covers a dropped connection.
			Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 2 * time.Second, TryTimeout: 20 * time.Second},
		},
		DisableChallengeResourceVerification: skipResourceCheck,
	})
	if err != nil {
		return nil, fmt.Errorf("keyvault: %s: %w", o.CertificateURL, err)
	}
	return &Source{name: o.CertificateURL, vaultURL: vaultURL, cert: name, client: client, log: o.Log, now: o.Now, leeway: o.Leeway,
		cache: map[string]*x509.Certificate{}, skipped: map[string]bool{}}, nil
}

// ParseCertificateURL checks a certificate URL,
// https://<vault host>/certificates/<name>, and splits it into the vault's
// URL and the certificate's name. A URL naming a version is refused: the
// source follows every version.
func ParseCertificateURL(s string) (vaultURL, name string, err error) {
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		return "", "", errors.New("keyvault: a certificate URL holds no user or password: the server authenticates with its Azure identity")
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("keyvault: %q: want the certificate's URL, https://<vault>.vault.azure.net/certificates/<name>", s)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case len(parts) == 3 && parts[0] == "certificates":
		return "", "", fmt.Errorf("keyvault: %q names one version of the certificate: name the certificate alone (https://%s/certificates/%s), the server follows every version", s, u.Host, parts[1])
	case len(parts) != 2 || parts[0] != "certificates" || !validName(parts[1]):
		return "", "", fmt.Errorf("keyvault: %q: want the certificate's URL, https://<vault>.vault.azure.net/certificates/<name> (a name of letters, digits and hyphens)", s)
	}
	return "https://" + u.Host, parts[1], nil
}

func validName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Kind implements auth.Source.
func (s *Source) Kind() string { return auth.KindKeyVault }

// Name implements auth.Source: the certificate's URL.
func (s *Source) Name() string { return s.name }

// version is one listed version of the certificate.
type version struct {
	id         string // the version
	notBefore  time.Time
	thumbprint []byte
}

// Fetch implements auth.Source: it lists the certificate's versions and
// returns every enabled one within its validity window (with the leeway;
// a version not yet valid is included too, so that it verifies from its
// start without waiting for the next fetch), each with its Key Vault key
// identifier. A version with no certificate yet (pending) or whose
// certificate Key Vault cannot give is skipped and logged once. The newest
// version already valid is marked current: what Key Vault signs with when
// a key identifier names no version.
func (s *Source) Fetch(ctx context.Context) ([]auth.Key, error) {
	now := s.now()
	var versions []version
	pager := s.client.NewListCertificatePropertiesVersionsPager(s.cert, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.describe("list the versions of", err)
		}
		for _, p := range page.Value {
			if p == nil || p.ID == nil {
				continue
			}
			a := p.Attributes
			if a == nil || a.Enabled == nil || !*a.Enabled {
				continue // disabled: not trusted
			}
			if a.Expires != nil && now.After(a.Expires.Add(s.leeway)) {
				continue // expired: Key Vault keeps every old version for ever
			}
			v := version{id: p.ID.Version(), thumbprint: p.X509Thumbprint}
			if a.NotBefore != nil {
				v.notBefore = *a.NotBefore
			}
			if v.id != "" {
				versions = append(versions, v)
			}
		}
	}
	var keys []auth.Key
	for _, v := range versions {
		x, kid, err := s.certificate(ctx, v)
		if err != nil {
			return nil, err
		}
		if x == nil {
			continue
		}
		keys = append(keys, auth.Key{Certificate: x, KeyID: kid, Location: s.vaultURL + "/certificates/" + s.cert + "/" + v.id})
	}
	// The newest version already valid is the current one.
	current := -1
	for i, k := range keys {
		nb := k.Certificate.NotBefore
		if now.Add(s.leeway).Before(nb) {
			continue
		}
		if current < 0 || nb.After(keys[current].Certificate.NotBefore) {
			current = i
		}
	}
	if current >= 0 {
		keys[current].Current = true
	}
	return keys, nil
}

// certificate returns version v's certificate and key identifier: from the
// cache, or from Key Vault. A version without a usable certificate is
// (nil, "", nil), logged the first time.
func (s *Source) certificate(ctx context.Context, v version) (*x509.Certificate, string, error) {
	kid := s.vaultURL + "/keys/" + s.cert + "/" + v.id
	s.mu.Lock()
	x := s.cache[v.id]
	s.mu.Unlock()
	if x != nil {
		return x, kid, nil
	}
	resp, err := s.client.GetCertificate(ctx, s.cert, v.id, nil)
	if err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || re.StatusCode == http.StatusForbidden && re.ErrorCode == "Forbidden" && strings.Contains(strings.ToLower(re.Error()), "disabled")) {
			s.skip(v.id, "Key Vault does not give this version's certificate", "status", re.StatusCode, "code", re.ErrorCode)
			return nil, "", nil
		}
		return nil, "", s.describe("get version "+v.id+" of", err)
	}
	c := resp.Certificate
	if len(c.CER) == 0 {
		s.skip(v.id, "the version has no certificate yet (a pending certificate operation)")
		return nil, "", nil
	}
	sum := sha1.Sum(c.CER)
	if len(c.X509Thumbprint) > 0 && !bytes.Equal(c.X509Thumbprint, sum[:]) || len(v.thumbprint) > 0 && !bytes.Equal(v.thumbprint, sum[:]) {
		return nil, "", fmt.Errorf("keyvault: %s version %s: the x5t Key Vault reports is not the SHA-1 of its certificate", s.name, v.id)
	}
	x, err = x509.ParseCertificate(c.CER)
	if err != nil {
		return nil, "", fmt.Errorf("keyvault: %s version %s: the certificate does not parse: %w", s.name, v.id, err)
	}
	if c.KID != nil && *c.KID != "" {
		kid = string(*c.KID)
	}
	s.mu.Lock()
	s.cache[v.id] = x
	s.mu.Unlock()
	return x, kid, nil
}

// skip logs, once per version, why it is not trusted.
func (s *Source) skip(version, why string, attrs ...any) {
	s.mu.Lock()
	logged := s.skipped[version]
	s.skipped[version] = true
	s.mu.Unlock()
	if !logged {
		s.log.Warn("Key Vault certificate version skipped: "+why, slices.Concat([]any{"source", s.name, "version", version}, attrs)...)
	}
}

// describe turns an SDK error into one line naming the certificate, the
// HTTP status and Key Vault's error code, with a hint for the errors an
// operator fixes (authentication, permissions, a wrong name).
func (s *Source) describe(what string, err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		hint := ""
		switch re.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = ": grant the server's identity read access to the certificate (the Azure RBAC role \"Key Vault Certificate User\", or the access policy permissions get and list on certificates)"
		case http.StatusNotFound:
			hint = ": check the vault and certificate names"
		}
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(re.StatusCode)
		}
		return fmt.Errorf("keyvault: %s %s: %d %s%s", what, s.name, re.StatusCode, code, hint)
	}
	var ae *azidentity.AuthenticationFailedError
	if errors.As(err, &ae) || strings.Contains(err.Error(), "credential") {
		return fmt.Errorf("keyvault: %s %s: no Azure credential could get a token (managed identity, workload identity, AZURE_* environment, Azure CLI): %s", what, s.name, firstLine(err.Error()))
	}
	return fmt.Errorf("keyvault: %s %s: %s", what, s.name, firstLine(err.Error()))
}

// firstLine keeps the first non-empty line of s, at most 300 bytes.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "---") {
			if len(l) > 300 {
				l = l[:300] + "..."
			}
			return l
		}
	}
	return "(no detail)"
}
