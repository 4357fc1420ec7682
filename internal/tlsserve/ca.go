package tlsserve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

// CA is a small local certificate authority: development mode's, and the
// tests'. Its key is ECDSA P-256.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA certificate named name, valid from now for
// validity.
func NewCA(rand io.Reader, name string, now time.Time, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(rand),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"keydelivery"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return caFrom(der, key)
}

// ParseCA reads a CA written by NewCA (its certificate and key PEM).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: CA certificate: %w", err)
	}
	k, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: CA key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(chain[0].PublicKey) || !chain[0].IsCA {
		return nil, errors.New("tlsserve: the CA key does not match the CA certificate")
	}
	return caFrom(chain[0].Raw, key)
}

func caFrom(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})}, nil
}

// Leaf is a certificate the CA issued, with its key, as PEM.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte // the leaf, then the CA certificate
	KeyPEM  []byte
}

// Issue makes a certificate for names (DNS names or IP addresses) with a
// fresh ECDSA P-256 key, valid from now for validity: a server
// certificate, or with client set a client certificate whose subject common
// name is the first name.
func (ca *CA) Issue(rand io.Reader, names []string, now time.Time, validity time.Duration, client bool) (*Leaf, error) {
	if len(names) == 0 {
		return nil, errors.New("tlsserve: a certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(rand),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !client {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &Leaf{Cert: cert, CertPEM: append(certPEM, ca.CertPEM...),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})}, nil
}

// SPKIHash is the base64 SHA-256 of a certificate's public key, the form
// Chromium's --ignore-certificate-errors-spki-list and HPKP pins take.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func serial(rand io.Reader) *big.Int {
	b := make([]byte, 16)
	_, _ = io.ReadFull(rand, b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}
