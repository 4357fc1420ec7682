package keystore

import (
	"errors"
	"testing"
)

// TestSealBlob: a blob opens under its own name only, never as a value of
// another kind, and not after a byte of it changed.
func TestSealBlob(t *testing.T) {
	kr := testRing(t, "kek-1")
	name := "certificates/acme/keys.test.example/keys.test.example.key"
	plain := []byte("-----BEGIN EC PRIVATE KEY-----\n...")
	sealed, err := kr.SealBlob(name, plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kr.OpenBlob(name, sealed); err != nil || string(got) != string(plain) {
		t.Fatalf("OpenBlob: %q %v", got, err)
	}
	if _, err := kr.OpenBlob(name+"x", sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("opened under another name: %v", err)
	}
	out := make([]byte, len(plain))
	bs := blobSlot(name)
	for k := sealKind(1); k <= kindKEKCheck; k++ {
		if err := kr.open(slot{k, bs.name}, sealed, out); !errors.Is(err, ErrSealed) {
			t.Fatalf("opened as kind %d: %v", k, err)
		}
	}
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	if _, err := kr.OpenBlob(name, tampered); !errors.Is(err, ErrSealed) {
		t.Fatalf("tampered blob: %v", err)
	}
	if _, err := kr.OpenBlob(name, []byte{2}); !errors.Is(err, ErrSealed) {
		t.Fatalf("truncated blob: %v", err)
	}
}
