package cpix

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// Encrypted CPIX (DASH-IF CPIX 2.3, "Content Key Encryption" and
// "DeliveryData"; AWS, "SPEKE API v2 - Content key encryption"): every
// content key of a document is encrypted under one document key with
// AES-256-CBC, and authenticated with HMAC-SHA512 under a MAC key; both
// keys are wrapped with RSA-OAEP for each recipient, whose certificate a
// DeliveryData names. The layouts follow the DASH-IF schema and what AWS's
// reference key server (awslabs/speke-reference-server,
// key_server_common.py) and Shaka Packager's CPIX reader
// (packager/media/base/cpix_key_source.cc) write and read:
//
//   - CipherValue of a content key: the 16-byte IV followed by
//     AES-256-CBC(document key, IV, key + padding), padded as XML
//     Encryption pads (the last byte says how many bytes of padding; here
//     PKCS#7, which is one such padding);
//   - ValueMAC: HMAC-SHA512(MAC key, the decoded CipherValue);
//   - DocumentKey and MACMethod/Key: RSA-OAEP (rsa-oaep-mgf1p: SHA-1 for
//     the hash and MGF1, no label) of the 32-byte document key and the
//     64-byte MAC key, to the recipient's certificate.

// Algorithm URIs of encrypted CPIX.
const (
	AlgAES256CBC  = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
	AlgRSAOAEP    = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	AlgHMACSHA512 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"
)

// Sizes of the document key (AES-256) and of the MAC key (SHA-512's block
// size, as AWS's reference server uses).
const (
	DocumentKeySize = 32
	MACKeySize      = 64
)

// MinRSABits is the smallest recipient key accepted: "SPEKE requires 2048
// RSA-based certificates".
const MinRSABits = 2048

// Errors of encrypted CPIX.
var (
	// ErrMAC: a ValueMAC does not match its value; nothing is decrypted.
	ErrMAC = errors.New("cpix: ValueMAC does not match the encrypted value")
	// ErrDecrypt: a value or a wrapped key does not decrypt.
	ErrDecrypt = errors.New("cpix: the encrypted value cannot be decrypted")
)

// DocumentKey holds the document key and the MAC key of one encrypted
// document. Wipe clears them (best effort).
type DocumentKey struct {
	key [DocumentKeySize]byte
	mac [MACKeySize]byte
}

// NewDocumentKey makes a document key and a MAC key from rand.
func NewDocumentKey(rand io.Reader) (*DocumentKey, error) {
	d := &DocumentKey{}
	if _, err := io.ReadFull(rand, d.key[:]); err != nil {
		return nil, fmt.Errorf("cpix: generate the document key: %w", err)
	}
	if _, err := io.ReadFull(rand, d.mac[:]); err != nil {
		return nil, fmt.Errorf("cpix: generate the MAC key: %w", err)
	}
	return d, nil
}

// Wipe clears the keys.
func (d *DocumentKey) Wipe() {
	clear(d.key[:])
	clear(d.mac[:])
}

// Encrypt encrypts a content key: it returns the CipherValue (IV and
// ciphertext) and its ValueMAC.
func (d *DocumentKey) Encrypt(rand io.Reader, plain []byte) (cipherValue, valueMAC []byte, err error) {
	block, err := aes.NewCipher(d.key[:])
	if err != nil {
		return nil, nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, aes.BlockSize+len(plain)+pad)
	if _, err := io.ReadFull(rand, buf[:aes.BlockSize]); err != nil {
		return nil, nil, fmt.Errorf("cpix: generate an IV: %w", err)
	}
	body := buf[aes.BlockSize:]
	copy(body, plain)
	for i := len(plain); i < len(body); i++ {
		body[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, buf[:aes.BlockSize]).CryptBlocks(body, body)
	return buf, d.sum(buf), nil
}

func (d *DocumentKey) sum(cipherValue []byte) []byte {
	h := hmac.New(sha512.New, d.mac[:])
	h.Write(cipherValue)
	return h.Sum(nil)
}

// Decrypt checks valueMAC against cipherValue first (constant time) and
// only then decrypts: ErrMAC when it does not match, ErrDecrypt when the
// value does not decrypt to a padded plaintext.
func (d *DocumentKey) Decrypt(cipherValue, valueMAC []byte) ([]byte, error) {
	if !hmac.Equal(d.sum(cipherValue), valueMAC) {
		return nil, ErrMAC
	}
	if len(cipherValue) < 2*aes.BlockSize || len(cipherValue)%aes.BlockSize != 0 {
		return nil, ErrDecrypt
	}
	block, err := aes.NewCipher(d.key[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(cipherValue)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, cipherValue[:aes.BlockSize]).CryptBlocks(out, cipherValue[aes.BlockSize:])
	pad := int(out[len(out)-1])
	if pad < 1 || pad > aes.BlockSize {
		clear(out)
		return nil, ErrDecrypt
	}
	return out[:len(out)-pad], nil
}

// Wrap encrypts the document key and the MAC key to a recipient's RSA key
// with RSA-OAEP (SHA-1, MGF1-SHA-1, no label).
func (d *DocumentKey) Wrap(rand io.Reader, pub *rsa.PublicKey) (wrappedKey, wrappedMAC []byte, err error) {
	if wrappedKey, err = rsa.EncryptOAEP(sha1.New(), rand, pub, d.key[:], nil); err != nil {
		return nil, nil, fmt.Errorf("cpix: wrap the document key: %w", err)
	}
	if wrappedMAC, err = rsa.EncryptOAEP(sha1.New(), rand, pub, d.mac[:], nil); err != nil {
		return nil, nil, fmt.Errorf("cpix: wrap the MAC key: %w", err)
	}
	return wrappedKey, wrappedMAC, nil
}

// UnwrapDocumentKey decrypts a wrapped document key and MAC key with the
// recipient's private key.
func UnwrapDocumentKey(priv *rsa.PrivateKey, wrappedKey, wrappedMAC []byte) (*DocumentKey, error) {
	k, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrappedKey, nil)
	if err != nil || len(k) != DocumentKeySize {
		clear(k)
		return nil, ErrDecrypt
	}
	m, err := rsa.DecryptOAEP(sha1.New(), nil, priv, wrappedMAC, nil)
	if err != nil || len(m) != MACKeySize {
		clear(k)
		clear(m)
		return nil, ErrDecrypt
	}
	d := &DocumentKey{}
	copy(d.key[:], k)
	copy(d.mac[:], m)
	clear(k)
	clear(m)
	return d, nil
}

// RecipientKey checks a DeliveryKey's certificate (DER) and returns its RSA
// key: RSA of at least MinRSABits bits.
func RecipientKey(der []byte) (*x509.Certificate, *rsa.PublicKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, errors.New("cpix: the recipient certificate is not an X.509 certificate")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, nil, errors.New("cpix: the recipient certificate's key is not RSA")
	}
	if pub.N.BitLen() < MinRSABits {
		return nil, nil, fmt.Errorf("cpix: the recipient certificate's RSA key has %d bits, want at least %d", pub.N.BitLen(), MinRSABits)
	}
	return cert, pub, nil
}

// The tree of encrypted values.

func encryptedValue(alg string, cipherValue []byte) *Element {
	ev := NewElement(NamespacePSKC, "EncryptedValue")
	ev.Append(encryptionMethod(alg))
	ev.Append(cipherData(cipherValue))
	return ev
}

func encryptionMethod(alg string) *Element {
	m := NewElement(NamespaceXMLEnc, "EncryptionMethod")
	m.SetAttr("Algorithm", alg)
	return m
}

func cipherData(v []byte) *Element {
	cd := NewElement(NamespaceXMLEnc, "CipherData")
	cv := NewElement(NamespaceXMLEnc, "CipherValue")
	cv.SetText(base64.StdEncoding.EncodeToString(v))
	cd.Append(cv)
	return cd
}

// PlainSecret returns a pskc:Secret holding value in the clear
// (pskc:PlainValue).
func PlainSecret(value []byte) *Element {
	s := NewElement(NamespacePSKC, "Secret")
	p := NewElement(NamespacePSKC, "PlainValue")
	p.SetText(base64.StdEncoding.EncodeToString(value))
	s.Append(p)
	return s
}

// EncryptedSecret returns a pskc:Secret holding value encrypted under d: a
// pskc:EncryptedValue (AES-256-CBC) and its pskc:ValueMAC.
func (d *DocumentKey) EncryptedSecret(rand io.Reader, value []byte) (*Element, error) {
	cv, mac, err := d.Encrypt(rand, value)
	if err != nil {
		return nil, err
	}
	s := NewElement(NamespacePSKC, "Secret")
	s.Append(encryptedValue(AlgAES256CBC, cv))
	m := NewElement(NamespacePSKC, "ValueMAC")
	m.SetText(base64.StdEncoding.EncodeToString(mac))
	s.Append(m)
	return s, nil
}

// DeliveryElements returns the DocumentKey and MACMethod elements of a
// DeliveryData: the document key and the MAC key wrapped for one
// recipient.
func DeliveryElements(wrappedKey, wrappedMAC []byte) (documentKey, macMethod *Element) {
	documentKey = NewElement(NamespaceCPIX, "DocumentKey")
	documentKey.SetAttr("Algorithm", AlgAES256CBC)
	data := NewElement(NamespaceCPIX, "Data")
	secret := NewElement(NamespacePSKC, "Secret")
	secret.Append(encryptedValue(AlgRSAOAEP, wrappedKey))
	data.Append(secret)
	documentKey.Append(data)
	macMethod = NewElement(NamespaceCPIX, "MACMethod")
	macMethod.SetAttr("Algorithm", AlgHMACSHA512)
	key := NewElement(NamespaceCPIX, "Key")
	key.Append(encryptionMethod(AlgRSAOAEP))
	key.Append(cipherData(wrappedMAC))
	macMethod.Append(key)
	return documentKey, macMethod
}

// DeliveryCertificate returns the DER certificate of a DeliveryData's
// DeliveryKey (ds:X509Data/ds:X509Certificate).
func DeliveryCertificate(deliveryData *Element) ([]byte, error) {
	dk := deliveryData.Child(NamespaceCPIX, "DeliveryKey")
	if dk == nil {
		return nil, errors.New("cpix: DeliveryData has no DeliveryKey")
	}
	xd := dk.Child(NamespaceDSig, "X509Data")
	if xd == nil {
		return nil, errors.New("cpix: DeliveryKey has no ds:X509Data")
	}
	xc := xd.Child(NamespaceDSig, "X509Certificate")
	if xc == nil {
		return nil, errors.New("cpix: ds:X509Data has no ds:X509Certificate")
	}
	der, err := base64.StdEncoding.DecodeString(string(bytes.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, []byte(xc.Text()))))
	if err != nil || len(der) == 0 {
		return nil, errors.New("cpix: ds:X509Certificate is not base64")
	}
	return der, nil
}
