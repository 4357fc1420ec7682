package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/ams"
	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/keystore"
)

const (
	devIssuer   = "keydelivery-dev"
	devAudience = "keydelivery"
)

// devMaterial names the files --dev generates once under the data dir.
type devMaterial struct {
	Dir             string
	CertFile        string
	KeyFile         string
	KEKFile         string
	CredentialsFile string
	AdminTokenFile  string
	// The RSA protection pair of the AMS ContentKey API.
	ProtectionCertFile string
	ProtectionKeyFile  string
	// The local CA and server certificate of --dev-tls.
	TLSCAFile, TLSCAKeyFile string
	TLSCertFile, TLSKeyFile string
	Created                 bool
}

func devPaths(dir string) devMaterial {
	return devMaterial{
		Dir:                dir,
		CertFile:           filepath.Join(dir, "dev-token-signing.crt"),
		KeyFile:            filepath.Join(dir, "dev-token-signing.key"),
		KEKFile:            filepath.Join(dir, "dev-kek"),
		CredentialsFile:    filepath.Join(dir, "dev-admin-credentials"),
		AdminTokenFile:     filepath.Join(dir, "dev-admin-token"),
		ProtectionCertFile: filepath.Join(dir, "dev-protection.crt"),
		ProtectionKeyFile:  filepath.Join(dir, "dev-protection.key"),
		TLSCAFile:          filepath.Join(dir, "dev-tls-ca.crt"),
		TLSCAKeyFile:       filepath.Join(dir, "dev-tls-ca.key"),
		TLSCertFile:        filepath.Join(dir, "dev-tls.crt"),
		TLSKeyFile:         filepath.Join(dir, "dev-tls.key"),
	}
}

// ensureDevMaterial generates, once, a self-signed EC P-256 token-signing
// certificate with its private key, a KEK and an admin credential. Files
// that exist are kept, so restarts reuse them.
func ensureDevMaterial(dir string, now time.Time) (devMaterial, error) {
	m := devPaths(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, err
	}
	if !exists(m.CertFile) || !exists(m.KeyFile) {
		certPEM, keyPEM, err := auth.GenerateDevCertificate(rand.Reader, "keydelivery dev token signing", now, 365*24*time.Hour)
		if err != nil {
			return m, err
		}
		if err := writeNew(m.KeyFile, keyPEM); err != nil {
			return m, err
		}
		if err := writeNew(m.CertFile, certPEM); err != nil {
			return m, err
		}
		m.Created = true
	}
	if !exists(m.ProtectionCertFile) || !exists(m.ProtectionKeyFile) {
		certPEM, keyPEM, err := ams.GenerateProtectionCertificate(rand.Reader, "keydelivery dev protection", now, 365*24*time.Hour)
		if err != nil {
			return m, err
		}
		if err := writeNew(m.ProtectionKeyFile, keyPEM); err != nil {
			return m, err
		}
		if err := writeNew(m.ProtectionCertFile, certPEM); err != nil {
			return m, err
		}
		m.Created = true
	}
	if !exists(m.KEKFile) {
		line, err := keystore.GenerateKEKLine(rand.Reader, "dev-1")
		if err != nil {
			return m, err
		}
		text := "# keydelivery DEV key-encryption key. Never use it in production.\n" + line + "\n"
		if err := writeNew(m.KEKFile, []byte(text)); err != nil {
			return m, err
		}
		m.Created = true
	}
	if !exists(m.CredentialsFile) || !exists(m.AdminTokenFile) {
		secret, err := credentials.GenerateSecret(rand.Reader)
		if err != nil {
			return m, err
		}
		if err := writeNew(m.AdminTokenFile, []byte(secret+"\n")); err != nil {
			return m, err
		}
		line := fmt.Sprintf("# keydelivery DEV admin credential; the secret is in %s\ndev-admin admin %s\n", filepath.Base(m.AdminTokenFile), credentials.HashSecret(secret))
		if err := writeNew(m.CredentialsFile, []byte(line)); err != nil {
			return m, err
		}
		m.Created = true
	}
	return m, nil
}

// ensureDevTLS generates, once, a local CA (valid five years) and a
// certificate it signs for localhost, 127.0.0.1 and ::1 (valid a year,
// made again when it is missing, expires within 30 days, or does not chain
// to the CA), for --dev-tls.
func ensureDevTLS(m *devMaterial, now time.Time) error {
	var ca *tlsserve.CA
	if exists(m.TLSCAFile) && exists(m.TLSCAKeyFile) {
		certPEM, err := os.ReadFile(m.TLSCAFile)
		if err != nil {
			return err
		}
		keyPEM, err := os.ReadFile(m.TLSCAKeyFile)
		if err != nil {
			return err
		}
		if ca, err = tlsserve.ParseCA(certPEM, keyPEM); err != nil {
			return fmt.Errorf("%s: %w (remove the dev-tls-* files to make new ones)", m.TLSCAFile, err)
		}
	} else {
		var err error
		if ca, err = tlsserve.NewCA(rand.Reader, "keydelivery dev CA", now, 5*365*24*time.Hour); err != nil {
			return err
		}
		for _, p := range []string{m.TLSCertFile, m.TLSKeyFile} {
			_ = os.Remove(p) // issued by a CA that is gone
		}
		if err := writeNew(m.TLSCAKeyFile, ca.KeyPEM); err != nil {
			return err
		}
		if err := writeNew(m.TLSCAFile, ca.CertPEM); err != nil {
			return err
		}
		m.Created = true
	}
	if c, err := tlsserve.ReadKeyPair(m.TLSCertFile, m.TLSKeyFile, now.Add(30*24*time.Hour)); err == nil && c.Leaf.CheckSignatureFrom(ca.Cert) == nil {
		return nil
	}
	leaf, err := ca.Issue(rand.Reader, []string{"localhost", "127.0.0.1", "::1"}, now, 365*24*time.Hour, false)
	if err != nil {
		return err
	}
	for _, p := range []string{m.TLSCertFile, m.TLSKeyFile} {
		_ = os.Remove(p)
	}
	if err := writeNew(m.TLSKeyFile, leaf.KeyPEM); err != nil {
		return err
	}
	if err := writeNew(m.TLSCertFile, leaf.CertPEM); err != nil {
		return err
	}
	m.Created = true
	return nil
}

// printDevTLS tells a developer how to trust the local CA of --dev-tls.
func printDevTLS(w io.Writer, m devMaterial) {
	fmt.Fprintf(w, `
  HTTPS (--dev-tls): the delivery plane's certificate is issued by a local
  CA made for this data dir, %s
  Trust it (for development only; remove it when done):
    curl:     curl --cacert %s https://localhost:...
    Chromium/Chrome on Linux (NSS):
              certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n keydelivery-dev -i %s
    Firefox:  Settings > Privacy & Security > Certificates > Import
    macOS:    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s
    Debian:   sudo cp %s /usr/local/share/ca-certificates/keydelivery-dev.crt && sudo update-ca-certificates
==========================================================================

`, m.TLSCAFile, m.TLSCAFile, m.TLSCAFile, m.TLSCAFile, m.TLSCAFile)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeNew writes a file that must not exist yet, readable by its owner only.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists already; remove it or the rest of the dev material", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printDevBanner tells a developer where the dev material is and how to
// create a key and fetch it.
func printDevBanner(w io.Writer, m devMaterial, deliveryURL, adminURL string) {
	fmt.Fprintf(w, `
================================ DEV MODE ================================
  DEVELOPMENT ONLY: self-signed token certificate, a KEK and an admin
  secret kept as plain files. Never run --dev in production.

  data dir          %s
  token cert        %s
  token signing key %s
  KEK file          %s
  admin credentials %s (secret in %s)
  delivery plane    %s
  admin plane       %s

  Try it (from the repository root, in another shell):

    export KD_ADMIN_TOKEN=$(cat %s) KD_SERVER=%s
    KID=$(go run ./cmd/kdctl keys create --quiet)
    TOKEN=$(go run ./cmd/kdctl token mint --signing-key %s --cert %s \
        --issuer %s --audience %s --kid $KID --ttl 1h)
    curl -sS -H "Authorization: Bearer $TOKEN" %s/keys/$KID | od -An -tx1
==========================================================================

`, m.Dir, m.CertFile, m.KeyFile, m.KEKFile, m.CredentialsFile, m.AdminTokenFile,
		deliveryURL, adminURL, m.AdminTokenFile, adminURL, m.KeyFile, m.CertFile, devIssuer, devAudience, deliveryURL)
}
