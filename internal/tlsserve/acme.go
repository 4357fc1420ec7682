package tlsserve

import (
	"crypto/tls"
	"crypto/x509"
)

// ACMETLSProto is the ALPN protocol of the TLS-ALPN-01 challenge (RFC
// 8737): a listener that obtains its certificate by ACME offers it.
const ACMETLSProto = "acme-tls/1"

// ACME obtains and renews certificates from an ACME CA.
type ACME struct{}

// GetCertificate returns the certificate for a handshake.
func (a *ACME) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }

// Certificates lists the managed certificates.
func (a *ACME) Certificates() []*x509.Certificate { return nil }
