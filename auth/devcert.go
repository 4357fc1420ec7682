package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// GenerateDevCertificate makes a self-signed EC P-256 token-signing
// certificate for development and tests: subject CN=cn, key usage
// digitalSignature, not a CA, a random 128-bit serial number, NotBefore =
// now-1h and NotAfter = now+validity. It returns the certificate and its
// PKCS#8 private key, both PEM encoded.
//
// rand supplies the serial number and is passed to key generation and
// signing, which since Go 1.26 ignore it in favour of the system's secure
// source unless GODEBUG=cryptocustomrand=1 is set.
func GenerateDevCertificate(rand io.Reader, cn string, now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if rand == nil {
		return nil, nil, errors.New("auth: generate certificate: nil random source")
	}
	if cn == "" {
		return nil, nil, errors.New("auth: generate certificate: empty common name")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("auth: generate certificate: validity %v is not positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate certificate: %w", err)
	}
	var serial [16]byte
	if _, err := io.ReadFull(rand, serial[:]); err != nil {
		return nil, nil, fmt.Errorf("auth: generate certificate: serial: %w", err)
	}
	sn := new(big.Int).SetBytes(serial[:])
	if sn.Sign() == 0 {
		sn.SetInt64(1) // serial numbers must be positive
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: generate certificate: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return certPEM, keyPEM, nil
}
