package ams

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestProtectionKeyID(t *testing.T) {
	cert, _, err := LoadProtectionKeyPair("testdata/openssl_cert.pem", "testdata/openssl_key_pkcs8.pem")
	if err != nil {
		t.Fatal(err)
	}
	// openssl x509 -in testdata/openssl_cert.pem -noout -fingerprint -sha1
	const want = "95776A17C287924483EC18C6EF15526B0F2200BA"
	if got := ProtectionKeyID(cert); got != want {
		t.Fatalf("ProtectionKeyID = %s, want %s", got, want)
	}
	// The shape of seed 001's ProtectionKeyId, 7D9BB04D9D0A4A24800CADBFEF232689E048F69C.
	if !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(ProtectionKeyID(cert)) {
		t.Fatal("not 40 upper-case hex digits")
	}
	if ProtectionKeyID(nil) != "" {
		t.Fatal("nil certificate has an id")
	}
}

func TestGenerateAndLoadProtectionKeyPair(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("X", 3600))
	certPEM, keyPEM, err := GenerateProtectionCertificate(rand.Reader, "keydelivery dev protection", now, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Fatal("key is not PEM PKCS#8")
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, certPEM)
	writeFile(t, keyFile, keyPEM)

	cert, priv, err := LoadProtectionKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "keydelivery dev protection" {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	wantStart := now.UTC().Truncate(time.Second)
	if !cert.NotBefore.Equal(wantStart) || !cert.NotAfter.Equal(wantStart.Add(90*24*time.Hour)) {
		t.Errorf("validity %v .. %v", cert.NotBefore, cert.NotAfter)
	}
	if cert.KeyUsage != x509.KeyUsageKeyEncipherment || cert.IsCA {
		t.Errorf("key usage %v, CA %v", cert.KeyUsage, cert.IsCA)
	}
	if priv.N.BitLen() != 2048 {
		t.Errorf("key has %d bits", priv.N.BitLen())
	}
	// Signed by its own key. (CheckSignatureFrom would refuse: the
	// certificate is an end entity without keyCertSign, deliberately.)
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if cert.Issuer.String() != cert.Subject.String() {
		t.Errorf("issuer %v != subject %v", cert.Issuer, cert.Subject)
	}
	if cert.SerialNumber.Sign() <= 0 {
		t.Error("serial number not positive")
	}

	// The pair works for the AMS flow.
	var key [16]byte
	copy(key[:], mustB64(t, "7lIBmBeF+EGDaguNx7EgQA=="))
	enc, err := EncryptContentKey(rand.Reader, cert.PublicKey.(*rsa.PublicKey), key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptContentKey(priv, enc); err != nil || got != key {
		t.Fatalf("decrypt with loaded key: %v", err)
	}

	t.Run("parse from memory", func(t *testing.T) {
		c2, _, err := ParseProtectionKeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if ProtectionKeyID(c2) != ProtectionKeyID(cert) {
			t.Fatal("different thumbprint")
		}
	})
	t.Run("two generations differ", func(t *testing.T) {
		c2PEM, _, err := GenerateProtectionCertificate(nil, "x", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if string(c2PEM) == string(certPEM) {
			t.Fatal("same certificate twice")
		}
	})
}

func TestGenerateProtectionCertificateErrors(t *testing.T) {
	now := time.Now()
	if _, _, err := GenerateProtectionCertificate(rand.Reader, "", now, time.Hour); err == nil {
		t.Error("empty CN accepted")
	}
	for _, v := range []time.Duration{0, -time.Hour} {
		if _, _, err := GenerateProtectionCertificate(rand.Reader, "x", now, v); err == nil {
			t.Errorf("validity %v accepted", v)
		}
	}
}

func TestLoadProtectionKeyPairOpenSSL(t *testing.T) {
	for _, keyFile := range []string{"testdata/openssl_key_pkcs8.pem", "testdata/openssl_key_pkcs1.pem"} {
		t.Run(filepath.Base(keyFile), func(t *testing.T) {
			cert, priv, err := LoadProtectionKeyPair("testdata/openssl_cert.pem", keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.PublicKey.(*rsa.PublicKey).Equal(&priv.PublicKey) {
				t.Fatal("pair does not match")
			}
		})
	}
}

func TestParseProtectionKeyPairRefusals(t *testing.T) {
	opensslCert := readBytes(t, "testdata/openssl_cert.pem")
	opensslKey := readBytes(t, "testdata/openssl_key_pkcs8.pem")
	now := time.Now()
	genCert, genKey, err := GenerateProtectionCertificate(rand.Reader, "other", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, ecKey := ecPair(t)
	weakCert, weakKey := rsaPair(t, 1024, x509.KeyUsageKeyEncipherment)
	signCert, signKey := rsaPair(t, 2048, x509.KeyUsageDigitalSignature)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x00}})
	dekInfo := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{
		"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000",
	}, Bytes: []byte{0x30, 0x00}})

	tests := []struct {
		name      string
		cert, key []byte
		wantErr   error
	}{
		{"mismatched pair (openssl cert, generated key)", opensslCert, genKey, ErrKeyPairMismatch},
		{"mismatched pair (generated cert, openssl key)", genCert, opensslKey, ErrKeyPairMismatch},
		{"EC certificate", ecCert, ecKey, ErrNotRSA},
		{"EC key with RSA certificate", opensslCert, ecKey, ErrNotRSA},
		{"1024-bit key", weakCert, weakKey, ErrWeakKey},
		{"certificate not for key encipherment", signCert, signKey, ErrKeyUsage},
		{"no certificate block", opensslKey, opensslKey, ErrBadPEM},
		{"no key block", opensslCert, opensslCert, ErrBadPEM},
		{"empty files", nil, nil, ErrBadPEM},
		{"encrypted PKCS#8 key", opensslCert, encrypted, ErrBadPEM},
		{"encrypted PKCS#1 key", opensslCert, dekInfo, ErrBadPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseProtectionKeyPair(tt.cert, tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if block, _ := pem.Decode(tt.key); block != nil && len(block.Bytes) > 8 {
				assertNoKeyMaterial(t, err, block.Bytes)
			}
		})
	}

	t.Run("garbage certificate", func(t *testing.T) {
		bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")})
		if _, _, err := ParseProtectionKeyPair(bad, opensslKey); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("garbage key", func(t *testing.T) {
		bad := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")})
		if _, _, err := ParseProtectionKeyPair(opensslCert, bad); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("mismatched files name the files", func(t *testing.T) {
		dir := t.TempDir()
		keyFile := filepath.Join(dir, "other.key")
		writeFile(t, keyFile, genKey)
		_, _, err := LoadProtectionKeyPair("testdata/openssl_cert.pem", keyFile)
		if !errors.Is(err, ErrKeyPairMismatch) || !strings.Contains(err.Error(), keyFile) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "BEGIN") {
			t.Fatal("error contains PEM")
		}
	})
	t.Run("missing files", func(t *testing.T) {
		if _, _, err := LoadProtectionKeyPair("testdata/nope.pem", "testdata/openssl_key_pkcs8.pem"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
		if _, _, err := LoadProtectionKeyPair("testdata/openssl_cert.pem", "testdata/nope.pem"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err = %v", err)
		}
	})
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readBytes(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func selfSign(t *testing.T, pub, priv any, usage x509.KeyUsage) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func ecPair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return selfSign(t, &k.PublicKey, k, x509.KeyUsageDigitalSignature),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func rsaPair(t *testing.T, bits int, usage x509.KeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return selfSign(t, &k.PublicKey, k, usage),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}
