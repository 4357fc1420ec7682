package playready

import (
	"errors"
	"testing"
)

func TestChecksum(t *testing.T) {
	// Issue 3: the key derived from the test key seed and this KID has the
	// AMS checksum jo5RgemjINw=.
	kid := mustUUID(t, "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f")
	var key [16]byte
	copy(key[:], mustB64(t, "7lIBmBeF+EGDaguNx7EgQA=="))
	if got := Checksum(key, kid); got != "jo5RgemjINw=" {
		t.Fatalf("Checksum = %s, want jo5RgemjINw=", got)
	}

	tests := []struct {
		name     string
		checksum string
		wantErr  error
	}{
		{"match", "jo5RgemjINw=", nil},
		{"other checksum", "TfXtjCIlq1Y=", ErrChecksumMismatch},
		{"empty", "", ErrChecksumMismatch},
		{"missing padding", "jo5RgemjINw", ErrChecksumMismatch},
		{"trailing garbage", "jo5RgemjINw=x", ErrChecksumMismatch},
		{"longer value with same prefix", "jo5RgemjINzHf7mPDm4yEw==", ErrChecksumMismatch},
		{"lower-case variant", "JO5RGEMJINW=", ErrChecksumMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyChecksum(key, kid, tt.checksum); !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyChecksum(%q) = %v, want %v", tt.checksum, err, tt.wantErr)
			}
		})
	}
	t.Run("kid in RFC order is not the AMS checksum", func(t *testing.T) {
		if Checksum(key, GUID(kid)) == "jo5RgemjINw=" {
			t.Fatal("checksum ignores the Guid byte order")
		}
	})
}
