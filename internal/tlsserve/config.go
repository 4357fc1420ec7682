package tlsserve

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// ServerConfig is the TLS configuration of a listener: TLS 1.2 and 1.3
// only, with Go's default cipher suites and key exchanges (forward secret
// AEAD suites only), the certificate chosen by getCertificate for each
// handshake, and HTTP/2 and HTTP/1.1 offered by ALPN (net/http's ServeTLS
// adds them to NextProtos). With clientCAs, the client must present a
// certificate that chains to one of them (mutual TLS); a client without one
// fails the handshake.
func ServerConfig(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error), clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// LoadCertPool reads the CA certificates of a PEM file (one or more), for
// verifying client certificates or a private ACME directory's server. It
// refuses a file without a certificate, and one whose certificates have all
// expired at now.
func LoadCertPool(file string, now time.Time) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: CA file: %w", err)
	}
	certs, err := parseChain(b)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: CA file %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	var valid int
	for _, c := range certs {
		pool.AddCert(c)
		if checkValidity(c, now) == nil {
			valid++
		}
	}
	if valid == 0 {
		return nil, fmt.Errorf("tlsserve: CA file %s: %w", file, errors.New("every certificate in it has expired or is not yet valid"))
	}
	return pool, nil
}
