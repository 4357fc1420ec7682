package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Certificate statuses returned by [Certificate.Status].
const (
	statusValid       = "valid"
	statusExpired     = "expired"
	statusNotYetValid = "not_yet_valid"
)

// Certificate is one trusted token-verification key: a token-signing
// certificate (from a file or from Azure Key Vault), or a bare key from a
// JSON Web Key Set (Kind KindJWKS or KindOIDC: Cert is nil, SHA1 and SHA256
// are zero and the key is chosen by KeyID only). Its public key is always
// ECDSA P-256.
type Certificate struct {
	Subject   string           // the certificate's subject, e.g. "CN=content-protection-token-certificate"; "" for a bare key
	SHA1      [20]byte         // SHA-1 of the DER certificate (what Key Vault calls x5t)
	SHA256    [32]byte         // SHA-256 of the DER certificate (x5t#S256)
	NotBefore time.Time        // start of the validity window; zero: none (a bare key)
	NotAfter  time.Time        // end of the validity window; zero: none (a bare key)
	Source    string           // where it was loaded from: the file, the Key Vault certificate version, the JWKS URL
	PublicKey *ecdsa.PublicKey // always P-256
	Cert      *x509.Certificate
	// Kind is the kind of source it came from: KindFile, KindKeyVault,
	// KindJWKS or KindOIDC ("" is read as KindFile).
	Kind string
	// KeyID is what a token's "kid" header may name it by, besides the
	// thumbprints: the Azure Key Vault key identifier of a Key Vault
	// certificate version (https://<vault>.vault.azure.net/keys/<name>/<version>,
	// from Key Vault or from the "kid" of a Key Vault JSON file), or the
	// "kid" of a JSON Web Key. Empty when it has none.
	KeyID string
	// Current marks the version of a Key Vault certificate that Key Vault
	// signs with when a key identifier names no version (the newest enabled
	// version already valid when the source was read).
	Current bool
	// Issuer, when set, is the only iss whose tokens the key verifies: the
	// OpenID Connect issuer it was fetched from (Key.Issuer). Empty: any
	// configured issuer (certificate files, Key Vault, a plain key set).
	Issuer string
}

// The kinds of trust source (Certificate.Kind, SourceStatus.Kind).
const (
	KindFile     = "file"     // certificate files and directories (--token-certs)
	KindKeyVault = "keyvault" // an Azure Key Vault certificate, every version
	KindJWKS     = "jwks"     // a JSON Web Key Set URL
	KindOIDC     = "oidc"     // an OpenID Connect issuer's JSON Web Key Set
)

// X5T returns the base64url (unpadded) SHA-1 thumbprint, as in a JWS "x5t"
// header and as Azure Key Vault reports it.
func (c Certificate) X5T() string { return base64.RawURLEncoding.EncodeToString(c.SHA1[:]) }

// X5TS256 returns the base64url (unpadded) SHA-256 thumbprint, as in a JWS
// "x5t#S256" header.
func (c Certificate) X5TS256() string { return base64.RawURLEncoding.EncodeToString(c.SHA256[:]) }

// Status returns "valid", "expired" or "not_yet_valid" for the time now, with
// the validity window widened by leeway on both sides. A zero NotBefore or
// NotAfter is no bound (a bare key from a key set has neither).
func (c Certificate) Status(now time.Time, leeway time.Duration) string {
	switch {
	case !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-leeway)):
		return statusNotYetValid
	case !c.NotAfter.IsZero() && now.After(c.NotAfter.Add(leeway)):
		return statusExpired
	default:
		return statusValid
	}
}

// newCertificate checks that x carries an ECDSA P-256 key and describes it.
func newCertificate(x *x509.Certificate, source string) (Certificate, error) {
	pub, ok := x.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return Certificate{}, fmt.Errorf("certificate %q: public key is %s, want ECDSA P-256", x.Subject.String(), keyDescription(x))
	}
	return Certificate{
		Subject:   x.Subject.String(),
		SHA1:      sha1.Sum(x.Raw),
		SHA256:    sha256.Sum256(x.Raw),
		NotBefore: x.NotBefore,
		NotAfter:  x.NotAfter,
		Source:    source,
		PublicKey: pub,
		Cert:      x,
		Kind:      KindFile,
	}, nil
}

func keyDescription(x *x509.Certificate) string {
	if pub, ok := x.PublicKey.(*ecdsa.PublicKey); ok && pub.Curve != nil {
		return "ECDSA " + pub.Curve.Params().Name
	}
	return x.PublicKeyAlgorithm.String()
}

// LoadCertificates reads trusted token-signing certificates from files and
// directories.
//
// A directory is read non-recursively; entries whose names start with a dot
// are skipped (such as the ..data directories of a Kubernetes secret volume),
// symlinks to regular files are followed and subdirectories are ignored. A
// path named explicitly is always read.
//
// Each file holds one of:
//   - PEM with one or more CERTIFICATE blocks (other block types, such as a
//     private key mounted next to the certificate, are ignored);
//   - a DER certificate;
//   - Azure Key Vault certificate JSON (the body of a GET certificate
//     response): "cer" is the base64 DER certificate; if "x5t" is present it
//     must equal the base64url SHA-1 of "cer"; a certificate whose
//     "attributes.enabled" is false is skipped.
//
// A Key Vault JSON file holding the body Key Vault answers while a
// certificate is still being created (202 Accepted: "csr" and "status", no
// "cer") is skipped; [Trust] logs a warning naming it.
//
// A certificate whose key is not ECDSA P-256 is an error naming the file.
// Duplicates (same SHA-256) are kept once, from the first file. The result is
// sorted by NotAfter. Finding no certificate at all is an error.
func LoadCertificates(paths []string) ([]Certificate, error) {
	certs, _, err := loadCertificates(paths)
	return certs, err
}

// loadCertificates is LoadCertificates that also says which files it
// skipped, and why, for the log.
func loadCertificates(paths []string) (certs []Certificate, skipped []string, err error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("auth: load certificates: no paths")
	}
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("auth: load certificates: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, nil, fmt.Errorf("auth: load certificates: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			name := filepath.Join(p, e.Name())
			fi, err := os.Stat(name) // follows symlinks
			if err != nil {
				return nil, nil, fmt.Errorf("auth: load certificates: %w", err)
			}
			if fi.Mode().IsRegular() {
				files = append(files, name)
			}
		}
	}

	seen := make(map[[32]byte]bool)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, fmt.Errorf("auth: load certificates: %w", err)
		}
		found, err := parseCertificateFile(data, name)
		var pending *pendingError
		if errors.As(err, &pending) {
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("auth: load certificates: %s: %w", name, err)
		}
		for _, c := range found {
			if !seen[c.SHA256] {
				seen[c.SHA256] = true
				certs = append(certs, c)
			}
		}
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("auth: load certificates: no certificate found in %s", strings.Join(paths, ", "))
	}
	sortCertificates(certs)
	return certs, skipped, nil
}

func sortCertificates(certs []Certificate) {
	slices.SortStableFunc(certs, func(a, b Certificate) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return bytes.Compare(a.SHA256[:], b.SHA256[:])
	})
}

// parseCertificateFile recognises PEM, Key Vault JSON or DER.
func parseCertificateFile(data []byte, source string) ([]Certificate, error) {
	trimmed := bytes.TrimSpace(data)
	var xs []*x509.Certificate
	kid := ""
	switch {
	case bytes.HasPrefix(trimmed, []byte("{")):
		x, id, err := parseKeyVault(trimmed)
		if err != nil {
			return nil, err
		}
		if x != nil {
			xs, kid = append(xs, x), id
		}
	case bytes.Contains(data, []byte("-----BEGIN")):
		var err error
		if xs, err = parsePEMCertificates(data); err != nil {
			return nil, err
		}
	default:
		x, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, errors.New("not a PEM, DER or Key Vault JSON certificate")
		}
		xs = append(xs, x)
	}
	certs := make([]Certificate, 0, len(xs))
	for _, x := range xs {
		c, err := newCertificate(x, source)
		if err != nil {
			return nil, err
		}
		c.KeyID = kid
		certs = append(certs, c)
	}
	return certs, nil
}

// parsePEMCertificates returns every CERTIFICATE block; other blocks are
// ignored, so a file with none yields no certificates.
func parsePEMCertificates(data []byte) ([]*x509.Certificate, error) {
	var xs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return xs, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pem block %d: %w", n, err)
		}
		xs = append(xs, x)
	}
}

// keyVaultCertificate is the part of an Azure Key Vault certificate bundle
// (GET /certificates/{name}) that matters here, and of the certificate
// operation Key Vault answers while a certificate is being created.
type keyVaultCertificate struct {
	Cer        *string `json:"cer"`
	X5T        *string `json:"x5t"`
	KID        *string `json:"kid"`
	Attributes *struct {
		Enabled *bool `json:"enabled"`
	} `json:"attributes"`
	// A certificate operation (202 Accepted on create) has these instead
	// of cer.
	ID     *string `json:"id"`
	CSR    *string `json:"csr"`
	Status *string `json:"status"`
}

// pendingError is a Key Vault JSON file holding a certificate operation
// still in progress, not a certificate: LoadCertificates skips it.
type pendingError struct{ status string }

func (e *pendingError) Error() string {
	return "key vault json: a pending certificate operation (status " + e.status + "), not a certificate: skipped; save the body of GET /certificates/{name} once the certificate is issued"
}

// parseKeyVault returns the certificate in a Key Vault certificate bundle
// and its key identifier (kid), or nil if the bundle says it is disabled.
// The body of a pending certificate operation is a *pendingError.
func parseKeyVault(data []byte) (*x509.Certificate, string, error) {
	var kv keyVaultCertificate
	if err := json.Unmarshal(data, &kv); err != nil {
		return nil, "", fmt.Errorf("key vault json: %w", err)
	}
	if kv.Cer == nil || *kv.Cer == "" {
		if kv.CSR != nil || kv.Status != nil || kv.ID != nil && strings.HasSuffix(*kv.ID, "/pending") {
			status := "unknown"
			if kv.Status != nil {
				status = strconvQuote(*kv.Status)
			}
			return nil, "", &pendingError{status: status}
		}
		return nil, "", errors.New("key vault json: no \"cer\" field")
	}
	der, err := base64.StdEncoding.DecodeString(*kv.Cer)
	if err != nil {
		return nil, "", fmt.Errorf("key vault json: cer: %w", err)
	}
	if kv.X5T != nil {
		want, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(*kv.X5T, "="))
		if err != nil {
			return nil, "", fmt.Errorf("key vault json: x5t: %w", err)
		}
		got := sha1.Sum(der)
		if !bytes.Equal(want, got[:]) {
			return nil, "", errors.New("key vault json: x5t does not match the SHA-1 thumbprint of cer")
		}
	}
	if kv.Attributes != nil && kv.Attributes.Enabled != nil && !*kv.Attributes.Enabled {
		return nil, "", nil
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, "", fmt.Errorf("key vault json: cer: %w", err)
	}
	kid := ""
	if kv.KID != nil {
		kid = *kv.KID
	}
	return x, kid, nil
}

// strconvQuote quotes s for an error message, cut to 32 bytes.
func strconvQuote(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return strconv.Quote(s)
}
