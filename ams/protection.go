package ams

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"time"
)

// ProtectionKeyBits is the size of the RSA key GenerateProtectionCertificate
// makes, and the minimum size ParseProtectionKeyPair accepts.
const ProtectionKeyBits = 2048

// ProtectionKeyID is how AMS names a protection certificate (the
// ProtectionKeyId of a ContentKey, the answer of GetProtectionKeyId): its
// SHA-1 thumbprint over the DER certificate, in upper-case hex, as .NET's
// X509Certificate2.Thumbprint prints it (40 characters, e.g.
// "7D9BB04D9D0A4A24800CADBFEF232689E048F69C"). A nil certificate gives "".
func ProtectionKeyID(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha1.Sum(cert.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// GenerateProtectionCertificate makes a self-signed RSA-2048 protection
// certificate for dev mode: subject CN=cn, key usage key encipherment only,
// not a CA, valid from now for validity. It returns the PEM certificate
// ("CERTIFICATE") and the PEM PKCS#8 private key ("PRIVATE KEY").
//
// random supplies the serial number and the signature randomness; nil means
// crypto/rand.Reader. Since Go 1.26 crypto/rsa ignores the reader for key
// generation and always uses a secure source.
func GenerateProtectionCertificate(random io.Reader, cn string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		return nil, nil, errors.New("ams: generate protection certificate: empty common name")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("ams: generate protection certificate: validity %v is not positive", validity)
	}
	if random == nil {
		random = rand.Reader
	}
	priv, err := rsa.GenerateKey(random, ProtectionKeyBits)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: generate protection key: %w", err)
	}
	var sn [16]byte
	if _, err := io.ReadFull(random, sn[:]); err != nil {
		return nil, nil, fmt.Errorf("ams: generate certificate serial: %w", err)
	}
	sn[0] &= 0x7f // positive, at most 127 bits
	sn[0] |= 0x40 // never zero, always 16 bytes of DER
	start := now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sn[:]),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             start,
		NotAfter:              start.Add(validity),
		KeyUsage:              x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(random, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: create protection certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: marshal protection key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)
	return certPEM, keyPEM, nil
}

// LoadProtectionKeyPair reads a PEM RSA certificate and its PEM private key
// (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY") from files and checks
// them as ParseProtectionKeyPair does. Errors name the files, never their
// contents.
func LoadProtectionKeyPair(certFile, keyFile string) (*x509.Certificate, *rsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: read protection certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: read protection key: %w", err)
	}
	defer clear(keyPEM)
	cert, priv, err := ParseProtectionKeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (certificate %s, key %s)", err, certFile, keyFile)
	}
	return cert, priv, nil
}

// ParseProtectionKeyPair parses a PEM RSA certificate (the first
// "CERTIFICATE" block) and its PEM private key (the first "RSA PRIVATE KEY"
// or "PRIVATE KEY" block; encrypted keys are refused) and checks that:
// both are RSA (ErrNotRSA), the key has at least 2048 bits (ErrWeakKey), the
// certificate's key usage, when present, allows key encipherment
// (ErrKeyUsage), and the private key belongs to the certificate
// (ErrKeyPairMismatch). It does not check the validity period; callers that
// care compare cert.NotAfter with their clock.
func ParseProtectionKeyPair(certPEM, keyPEM []byte) (*x509.Certificate, *rsa.PrivateKey, error) {
	certDER := findPEM(certPEM, func(t string) bool { return t == "CERTIFICATE" })
	if certDER == nil {
		return nil, nil, fmt.Errorf("%w: no CERTIFICATE block", ErrBadPEM)
	}
	cert, err := x509.ParseCertificate(certDER.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("ams: parse protection certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("%w: certificate key is %T", ErrNotRSA, cert.PublicKey)
	}
	if pub.N.BitLen() < ProtectionKeyBits {
		return nil, nil, fmt.Errorf("%w: %d bits", ErrWeakKey, pub.N.BitLen())
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return nil, nil, ErrKeyUsage
	}

	priv, err := parseRSAPrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !pub.Equal(&priv.PublicKey) {
		return nil, nil, ErrKeyPairMismatch
	}
	return cert, priv, nil
}

func parseRSAPrivateKeyPEM(keyPEM []byte) (*rsa.PrivateKey, error) {
	block := findPEM(keyPEM, func(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") })
	if block == nil {
		return nil, fmt.Errorf("%w: no PRIVATE KEY block", ErrBadPEM)
	}
	defer clear(block.Bytes)
	if _, encrypted := block.Headers["DEK-Info"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
		return nil, fmt.Errorf("%w: encrypted private keys are not supported", ErrBadPEM)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ams: parse PKCS#1 protection key: %w", err)
		}
		return priv, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ams: parse PKCS#8 protection key: %w", err)
		}
		priv, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: private key is %T", ErrNotRSA, k)
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("%w: %q blocks are not supported", ErrNotRSA, block.Type)
	}
}

// findPEM returns the first PEM block in data whose type satisfies match.
func findPEM(data []byte, match func(string) bool) *pem.Block {
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil
		}
		if match(block.Type) {
			return block
		}
	}
	return nil
}
