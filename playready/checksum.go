package playready

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/base64"
	"errors"
)

// ErrChecksumMismatch means a checksum that does not match the content key
// and KID.
var ErrChecksumMismatch = errors.New("playready: content key checksum mismatch")

// Checksum is the CHECKSUM attribute of an AESCTR KID in a PlayReady
// header, which Azure Media Services also used as its ContentKey Checksum:
// the standard base64 of the first 8 bytes of AES-128-ECB(key, GUID(kid)).
// kid is in RFC 9562 byte order. This is EncryptionUtils.CalculateChecksum
// of the AMS .NET SDK (Azure/azure-sdk-for-media-services).
func Checksum(key [16]byte, kid [16]byte) string {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		// Unreachable: a 16-byte key is always a valid AES-128 key.
		panic("playready: " + err.Error())
	}
	g := GUID(kid)
	var out [16]byte
	block.Encrypt(out[:], g[:])
	sum := base64.StdEncoding.EncodeToString(out[:8])
	clear(out[:])
	return sum
}

// VerifyChecksum reports, as ErrChecksumMismatch, whether checksum is not the
// checksum of key and kid. The comparison is exact (the canonical
// standard-base64 form AMS clients send) and constant-time.
func VerifyChecksum(key [16]byte, kid [16]byte, checksum string) error {
	want := Checksum(key, kid)
	if subtle.ConstantTimeCompare([]byte(want), []byte(checksum)) != 1 {
		return ErrChecksumMismatch
	}
	return nil
}
