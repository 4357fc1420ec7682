package ams

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
)

// MaxEncryptedContentKeyLen is the longest EncryptedContentKey accepted, in
// characters: the AMS ContentKey entity's documented maximum length (4000).
const MaxEncryptedContentKeyLen = 4000

// DecryptContentKey decrypts an AMS EncryptedContentKey: standard base64 of
// the content key encrypted with RSA-OAEP, SHA-1 for both the OAEP hash and
// MGF1, empty label, to the protection certificate's public key. That is what
// the AMS .NET SDK does (EncryptionUtils.EncryptSymmetricKeyData uses
// RSAOAEPKeyExchangeFormatter, whose CreateKeyExchange is
// RSA.Encrypt(data, RSAEncryptionPadding.OaepSHA1)).
//
// The plaintext must be exactly 16 bytes. Every OAEP failure is the same
// ErrDecryption, and no error contains the ciphertext or the plaintext.
func DecryptContentKey(priv *rsa.PrivateKey, encryptedB64 string) ([16]byte, error) {
	var key [16]byte
	if priv == nil {
		return key, fmt.Errorf("%w: no protection private key", ErrDecryption)
	}
	if encryptedB64 == "" {
		return key, fmt.Errorf("%w: empty", ErrMalformedEncryptedKey)
	}
	if len(encryptedB64) > MaxEncryptedContentKeyLen {
		return key, fmt.Errorf("%w: longer than %d characters", ErrMalformedEncryptedKey, MaxEncryptedContentKeyLen)
	}
	ct, err := base64.StdEncoding.DecodeString(encryptedB64)
	if err != nil {
		return key, fmt.Errorf("%w: not standard base64", ErrMalformedEncryptedKey)
	}
	if len(ct) != priv.Size() {
		// Lengths are public; this usually means another certificate's key size.
		return key, fmt.Errorf("%w: ciphertext is %d bytes, protection key needs %d", ErrDecryption, len(ct), priv.Size())
	}
	pt, err := rsa.DecryptOAEP(sha1.New(), nil, priv, ct, nil)
	if err != nil {
		return key, ErrDecryption
	}
	defer clear(pt)
	if len(pt) != len(key) {
		return key, fmt.Errorf("%w: got %d bytes", ErrContentKeyLength, len(pt))
	}
	copy(key[:], pt)
	return key, nil
}

// EncryptContentKey is the client side of DecryptContentKey (for tests and
// kdctl): RSA-OAEP with SHA-1 (hash and MGF1, empty label) to pub, standard
// base64. random is the entropy source for OAEP; nil means crypto/rand.Reader.
func EncryptContentKey(random io.Reader, pub *rsa.PublicKey, key [16]byte) (string, error) {
	if pub == nil {
		return "", fmt.Errorf("ams: encrypt content key: no public key")
	}
	if random == nil {
		random = rand.Reader
	}
	ct, err := rsa.EncryptOAEP(sha1.New(), random, pub, key[:], nil)
	if err != nil {
		return "", fmt.Errorf("ams: encrypt content key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}
