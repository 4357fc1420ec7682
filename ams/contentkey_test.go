package ams

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func opensslPair(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	_, priv, err := LoadProtectionKeyPair("testdata/openssl_cert.pem", "testdata/openssl_key_pkcs8.pem")
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// assertNoKeyMaterial fails if err's text contains any of the secrets in
// base64 or hex.
func assertNoKeyMaterial(t *testing.T, err error, secrets ...[]byte) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range secrets {
		for _, enc := range []string{
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s),
			hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
		} {
			if enc != "" && strings.Contains(msg, enc) {
				t.Fatalf("error %q contains key material", msg)
			}
		}
		if len(s) > 0 && strings.Contains(msg, string(s)) {
			t.Fatalf("error %q contains raw key material", msg)
		}
	}
}

func TestDecryptContentKeyOpenSSLVector(t *testing.T) {
	// testdata/openssl_encrypted_content_key.txt was made by OpenSSL with
	// RSA-OAEP, SHA-1 and MGF1-SHA-1 (see testdata/README.md): what .NET's
	// RSAOAEPKeyExchangeFormatter, and hence the AMS SDK, produces.
	priv := opensslPair(t)
	got, err := DecryptContentKey(priv, readFixture(t, "openssl_encrypted_content_key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if b64 := base64.StdEncoding.EncodeToString(got[:]); b64 != "7lIBmBeF+EGDaguNx7EgQA==" {
		t.Fatalf("decrypted %s, want 7lIBmBeF+EGDaguNx7EgQA==", b64)
	}
}

func TestEncryptDecryptContentKey(t *testing.T) {
	priv := opensslPair(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var key [16]byte
	copy(key[:], mustB64(t, "7lIBmBeF+EGDaguNx7EgQA=="))

	enc, err := EncryptContentKey(rand.Reader, &priv.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptContentKey(priv, enc); err != nil || got != key {
		t.Fatalf("round trip: %x, %v", got, err)
	}
	enc2, err := EncryptContentKey(nil, &priv.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if enc2 == enc {
		t.Fatal("OAEP encryption is not randomised")
	}

	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	encSmall, err := EncryptContentKey(rand.Reader, &small.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		priv    *rsa.PrivateKey
		in      string
		wantErr error
	}{
		{"wrong private key", other, enc, ErrDecryption},
		{"key of another size", priv, encSmall, ErrDecryption},
		{"OAEP with SHA-256 instead of SHA-1", priv, readFixture(t, "openssl_encrypted_oaep_sha256.txt"), ErrDecryption},
		{"plaintext of 15 bytes", priv, readFixture(t, "openssl_encrypted_15_bytes.txt"), ErrContentKeyLength},
		{"tampered ciphertext", priv, tamper(t, enc), ErrDecryption},
		{"bad base64", priv, "not*base64!", ErrMalformedEncryptedKey},
		{"url-safe base64", priv, strings.NewReplacer("+", "-", "/", "_").Replace(enc) + "-", ErrMalformedEncryptedKey},
		{"empty", priv, "", ErrMalformedEncryptedKey},
		{"too long", priv, strings.Repeat("A", MaxEncryptedContentKeyLen+4), ErrMalformedEncryptedKey},
		{"no private key", nil, enc, ErrDecryption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecryptContentKey(tt.priv, tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != ([16]byte{}) {
				t.Fatalf("returned a key with error %v", err)
			}
			assertNoKeyMaterial(t, err, key[:], key[:15])
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error echoes the encrypted key: %v", err)
			}
		})
	}

	t.Run("plaintext of 32 bytes", func(t *testing.T) {
		long := bytes.Repeat(key[:], 2)
		ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &priv.PublicKey, long, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecryptContentKey(priv, base64.StdEncoding.EncodeToString(ct))
		if !errors.Is(err, ErrContentKeyLength) {
			t.Fatalf("err = %v, want ErrContentKeyLength", err)
		}
		assertNoKeyMaterial(t, err, long, key[:])
	})
	t.Run("encrypt without public key", func(t *testing.T) {
		if _, err := EncryptContentKey(rand.Reader, nil, key); err == nil {
			t.Fatal("no error")
		}
	})
}

// tamper flips one bit in the middle of a base64 ciphertext.
func tamper(t *testing.T, b64 string) string {
	t.Helper()
	ct := mustB64(t, b64)
	ct[len(ct)/2] ^= 0x01
	return base64.StdEncoding.EncodeToString(ct)
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test base64 %q: %v", s, err)
	}
	return b
}
