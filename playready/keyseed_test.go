package playready

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// mustUUID parses a textual UUID into RFC 9562 (big-endian) bytes.
func mustUUID(t testing.TB, s string) [16]byte {
	t.Helper()
	var u [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("bad test UUID %q", s)
	}
	copy(u[:], b)
	return u
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test base64 %q: %v", s, err)
	}
	return b
}

// testKeySeed is the PlayReady test server's well-known key seed, published
// by Microsoft (the PlayReady Test Server documentation, "Test Key Seed") and
// used as the known-good seed in the AMS .NET SDK's unit tests.
const testKeySeed = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I"

func TestGUID(t *testing.T) {
	tests := []struct {
		name string
		uuid string
		want string // hex of Guid.ToByteArray()
	}{
		{
			// The byte order .NET documents for Guid.ToByteArray: the
			// Int32, Int16, Int16 fields little-endian, then 8 bytes as is.
			name: "sequential bytes",
			uuid: "00112233-4455-6677-8899-aabbccddeeff",
			want: "33221100554477668899aabbccddeeff",
		},
		{
			// The output printed by the Guid.ToByteArray example in the .NET
			// API reference:
			// https://learn.microsoft.com/dotnet/api/system.guid.tobytearray
			name: "dotnet reference example",
			uuid: "35918bc9-196d-40ea-9779-889d79b753f0",
			want: "c98b91356d19ea409779889d79b753f0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mustUUID(t, tt.uuid)
			g := GUID(u)
			if got := hex.EncodeToString(g[:]); got != tt.want {
				t.Fatalf("GUID(%s) = %s, want %s", tt.uuid, got, tt.want)
			}
			if back := GUID(g); back != u {
				t.Fatalf("GUID is not its own inverse: %x", back)
			}
		})
	}
}

func TestKeyFromSeed(t *testing.T) {
	tests := []struct {
		name string
		seed string // base64
		kid  string // RFC 9562 text
		want string // base64 content key
	}{
		{
			// The vector of issue 3 (admin plane).
			name: "issue 3 vector",
			seed: testKeySeed,
			kid:  "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f",
			want: "7lIBmBeF+EGDaguNx7EgQA==",
		},
		{
			// Independent vector: the AMS .NET SDK's unit test
			// PlayReadyContentKeyGenerationKnownGoodTest in
			// CommonEncryptionTest.cs of Azure/azure-sdk-for-media-services
			// (seed, Guid "339C45B5-FB6D-4BD9-994C-EABD9D41C95B", expected
			// "pTfNwMplhBQG1SXnvyLXVA=="). .NET parses that Guid string in
			// the same textual order as RFC 9562.
			name: "AMS .NET SDK known-good test",
			seed: testKeySeed,
			kid:  "339C45B5-FB6D-4BD9-994C-EABD9D41C95B",
			want: "pTfNwMplhBQG1SXnvyLXVA==",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := KeyFromSeed(mustB64(t, tt.seed), mustUUID(t, tt.kid))
			if err != nil {
				t.Fatal(err)
			}
			if got := base64.StdEncoding.EncodeToString(key[:]); got != tt.want {
				t.Fatalf("KeyFromSeed = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestKeyFromSeedPlayReadyHeaderChecksums checks key derivation and checksum
// together against Microsoft's own published PlayReady header: the WRMHEADER
// example of "Key and Key IDs (KIDs)"
// (https://learn.microsoft.com/en-us/playready/overview/key-and-key-ids-kids,
// MicrosoftDocs/PlayReady Docs/Overview/key-and-key-ids-kids.md), whose
// LA_URL is the PlayReady test server, i.e. keys from the test key seed.
// VALUE is the KID in Guid.ToByteArray order; CHECKSUM is the first 8 bytes
// of AES-ECB(content key, VALUE), the same computation as the AMS checksum.
func TestKeyFromSeedPlayReadyHeaderChecksums(t *testing.T) {
	tests := []struct{ value, checksum string }{
		{"0IbHou/5s0yzM80yOkKEpQ==", "xNvWVxoWk04="},
		{"/qgG2xbs4k2SKCxx6bhWqw==", "GnKaQIRacPU="},
	}
	for _, tt := range tests {
		var g [16]byte
		copy(g[:], mustB64(t, tt.value))
		kid := GUID(g) // back to RFC 9562 order
		key, err := KeyFromSeed(mustB64(t, testKeySeed), kid)
		if err != nil {
			t.Fatal(err)
		}
		if got := Checksum(key, kid); got != tt.checksum {
			t.Errorf("KID VALUE %s: checksum %s, want %s", tt.value, got, tt.checksum)
		}
	}
}

func TestKeyFromSeedLength(t *testing.T) {
	seed := mustB64(t, testKeySeed)
	kid := mustUUID(t, "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f")
	want, err := KeyFromSeed(seed, kid)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("longer seed uses first 30 bytes", func(t *testing.T) {
		long := append(bytes.Clone(seed), 0xde, 0xad, 0xbe, 0xef)
		got, err := KeyFromSeed(long, kid)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("32+ byte seed derived %x, want %x", got, want)
		}
	})
	for _, n := range []int{0, 1, 16, 29} {
		short := seed[:n]
		_, err := KeyFromSeed(short, kid)
		if !errors.Is(err, ErrSeedTooShort) {
			t.Fatalf("%d-byte seed: err = %v, want ErrSeedTooShort", n, err)
		}
		if n > 0 && (strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(short)) ||
			strings.Contains(err.Error(), hex.EncodeToString(short))) {
			t.Fatalf("error leaks seed bytes: %v", err)
		}
	}
	t.Run("kid byte order matters", func(t *testing.T) {
		// Deriving over the RFC 9562 bytes instead of Guid.ToByteArray
		// gives another key: the conversion is not a no-op.
		other, err := KeyFromSeed(seed, GUID(kid))
		if err != nil {
			t.Fatal(err)
		}
		if other == want {
			t.Fatal("KID byte order had no effect")
		}
	})
}
