package tlsserve

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReadKeyPair reads a certificate chain (PEM, the server's certificate
// first, then each intermediate in order) and its private key (PEM: PKCS #8,
// PKCS #1 or SEC 1; ECDSA, RSA or Ed25519), and checks them at now: the key
// must match the first certificate, which must be valid at now, and each
// certificate must be signed by the one after it. The errors say which file
// is at fault and what to do, and never quote key material.
func ReadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: certificate file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: key file: %w", err)
	}
	chain, err := parseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: certificate file %s: %w", certFile, err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsserve: key file %s: %w", keyFile, err)
	}
	leaf := chain[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("tlsserve: the private key in %s does not match the certificate in %s (%s): give the key the certificate was issued for", keyFile, certFile, describe(leaf))
	}
	if err := checkValidity(leaf, now); err != nil {
		return nil, fmt.Errorf("tlsserve: certificate file %s: %w", certFile, err)
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fmt.Errorf("tlsserve: certificate file %s: certificate %d (%s) is not signed by certificate %d (%s): put the server's certificate first, then each intermediate in order", certFile, i+1, describe(chain[i]), i+2, describe(chain[i+1]))
		}
	}
	c := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c, nil
}

// parseChain reads every CERTIFICATE block of b, in order.
func parseChain(b []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, errors.New("holds a private key: the certificate and the key go in separate files")
			}
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %w", len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("no PEM certificate (-----BEGIN CERTIFICATE-----) found")
	}
	return chain, nil
}

// parsePrivateKey reads the first private key block of b.
func parsePrivateKey(b []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM private key block (BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY) found")
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
			return nil, errors.New("the private key is encrypted: give the server an unencrypted key file readable only by its user")
		}
		var key any
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("the %s block does not parse: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		}
		return nil, fmt.Errorf("unsupported private key type %T (want ECDSA, RSA or Ed25519)", key)
	}
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.After(c.NotAfter) {
		return fmt.Errorf("the certificate (%s) expired on %s: renew it", describe(c), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("the certificate (%s) is not valid before %s: check the clock, or wait", describe(c), c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// describe names a certificate for a person: its subject and names.
func describe(c *x509.Certificate) string {
	s := "subject " + c.Subject.String()
	if names := Names(c); len(names) > 0 {
		s += ", names " + strings.Join(names, " ")
	}
	return s
}

// Names lists the DNS names and IP addresses a certificate is for.
func Names(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// CertFiles is a server certificate read from a certificate file and a key
// file, reloaded by Reload and by Watch. The certificate in use is swapped
// atomically: handshakes in progress and open connections keep the one
// they got.
type CertFiles struct {
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger
	onReload          func(ok bool)

	cur atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serialises reloads; guards stamp
	stamp string     // the files' sizes and times at the last attempt
}

// CertFilesOptions configures LoadCertFiles. Log is required.
type CertFilesOptions struct {
	Log *slog.Logger
	// Now is the clock validity is checked against (default time.Now).
	Now func() time.Time
	// OnReload is called after each reload attempt, with its outcome
	// (default: nothing), so that a caller can count them.
	OnReload func(ok bool)
}

// LoadCertFiles reads and checks the pair (see ReadKeyPair). It fails when
// the pair is unusable, so a server never starts without its certificate.
func LoadCertFiles(certFile, keyFile string, o CertFilesOptions) (*CertFiles, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnReload == nil {
		o.OnReload = func(bool) {}
	}
	f := &CertFiles{certFile: certFile, keyFile: keyFile, now: o.Now, log: o.Log, onReload: o.OnReload}
	f.stamp = f.stat()
	c, err := ReadKeyPair(certFile, keyFile, f.now())
	if err != nil {
		return nil, err
	}
	f.cur.Store(c)
	return f, nil
}

// GetCertificate returns the certificate in use: it is the
// tls.Config.GetCertificate of a listener.
func (f *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cur.Load(), nil
}

// Leaf is the certificate in use (its first certificate, parsed).
func (f *CertFiles) Leaf() *x509.Certificate { return f.cur.Load().Leaf }

// Reload reads the files again. On success new handshakes get the new
// certificate; on failure the one in use stays, and the error (also
// logged) says why.
func (f *CertFiles) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stamp = f.stat()
	c, err := ReadKeyPair(f.certFile, f.keyFile, f.now())
	if err != nil {
		f.log.Warn("TLS certificate reload failed; keeping the certificate in use", "cert_file", f.certFile,
			"in_use", describe(f.Leaf()), "err", err)
		f.onReload(false)
		return err
	}
	f.cur.Store(c)
	f.log.Info("TLS certificate loaded", "cert_file", f.certFile, "subject", c.Leaf.Subject.String(),
		"names", Names(c.Leaf), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	f.onReload(true)
	return nil
}

// Watch reloads the files whenever their size or modification time changes
// (a Kubernetes secret's symbolic link swap included), checking every
// interval until ctx ends. A pair caught half-written fails to reload and is
// tried again once the second file changes.
func (f *CertFiles) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		changed := f.stat() != f.stamp
		f.mu.Unlock()
		if changed {
			_ = f.Reload() // logs its outcome
		}
	}
}

// stat is a fingerprint of the two files (following symbolic links).
func (f *CertFiles) stat() string {
	var b strings.Builder
	for _, p := range []string{f.certFile, f.keyFile} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("missing;")
		}
	}
	return b.String()
}
