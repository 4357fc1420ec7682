package ams

import "errors"

// Sentinel errors. Match them with errors.Is; the text may carry extra
// context (lengths, file names) but never key material.
var (
	// ErrMalformedEncryptedKey means an EncryptedContentKey that is empty, too
	// long or not standard base64.
	ErrMalformedEncryptedKey = errors.New("ams: malformed encrypted content key")
	// ErrDecryption means RSA-OAEP decryption failed: the value was encrypted
	// to another certificate, or was tampered with. Deliberately uninformative.
	ErrDecryption = errors.New("ams: cannot decrypt encrypted content key")
	// ErrContentKeyLength means a decrypted content key that is not 16 bytes.
	ErrContentKeyLength = errors.New("ams: content key is not 16 bytes")
	// ErrNotRSA means a certificate or private key that is not RSA.
	ErrNotRSA = errors.New("ams: protection key is not RSA")
	// ErrWeakKey means an RSA protection key shorter than 2048 bits.
	ErrWeakKey = errors.New("ams: protection key shorter than 2048 bits")
	// ErrKeyUsage means a protection certificate whose key usage extension
	// does not allow key encipherment.
	ErrKeyUsage = errors.New("ams: protection certificate does not allow key encipherment")
	// ErrKeyPairMismatch means a private key that does not belong to the
	// certificate it was loaded with.
	ErrKeyPairMismatch = errors.New("ams: private key does not match certificate")
	// ErrBadPEM means PEM input without the expected block, or an encrypted
	// private key (not supported).
	ErrBadPEM = errors.New("ams: bad PEM input")
	// ErrUnknownKeyDeliveryType means a keyDeliveryType number AMS does not define.
	ErrUnknownKeyDeliveryType = errors.New("ams: unknown key delivery type")
	// ErrODataKeySyntax means an OData key segment or string literal that is
	// not well formed.
	ErrODataKeySyntax = errors.New("ams: malformed odata key")
	// ErrEntitySetMismatch means a well-formed OData key segment that names a
	// different entity set than the one expected.
	ErrEntitySetMismatch = errors.New("ams: odata key names another entity set")
)
