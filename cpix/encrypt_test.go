package cpix

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// recipientPair makes an RSA key and a self-signed certificate for it.
func recipientPair(t testing.TB, bits int) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "cpix recipient"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return k, cert
}

func encryptedDoc(t *testing.T, certs ...*x509.Certificate) (*Document, []byte) {
	t.Helper()
	d := &Document{ContentID: "enc-film", Keys: []Key{
		{KID: mustKID(t, kidA), Value: mustB64(t, valA), IV: mustB64(t, ivA), CommonEncryptionScheme: "cbcs"},
		{KID: mustKID(t, kidB), Value: mustB64(t, valB)},
	}}
	var buf bytes.Buffer
	if err := WriteEncrypted(&buf, d, certs, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return d, buf.Bytes()
}

// TestEncryptedRoundTrip: a document encrypted to two recipients holds no
// key in the clear and reads back, for each, to the same keys; without the
// recipient key it is refused as before (encrypted_value_unsupported).
func TestEncryptedRoundTrip(t *testing.T) {
	k1, c1 := recipientPair(t, 2048)
	k2, c2 := recipientPair(t, 2048)
	d, doc := encryptedDoc(t, c1, c2)
	if strings.Contains(string(doc), "PlainValue") || strings.Contains(string(doc), valA) {
		t.Fatalf("an encrypted document holds a key in the clear:\n%s", doc)
	}
	for _, k := range []*rsa.PrivateKey{k1, k2} {
		got, err := ReadWith(bytes.NewReader(doc), ReadOptions{Max: testMax, Recipient: k})
		if err != nil {
			t.Fatal(err)
		}
		checkKeys(t, got.Keys, d.Keys)
	}
	_, err := Read(bytes.NewReader(doc), testMax)
	var re *ReadError
	if !errors.As(err, &re) || len(re.Problems) != 2 || re.Problems[0].Reason != ReasonEncryptedValueUnsupported {
		t.Fatalf("without a recipient key: %v", err)
	}
	stranger, _ := recipientPair(t, 2048)
	_, err = ReadWith(bytes.NewReader(doc), ReadOptions{Max: testMax, Recipient: stranger})
	if !errors.As(err, &re) || re.Problems[0].Reason != ReasonNotRecipient {
		t.Fatalf("another recipient: %v", err)
	}
	_, small := recipientPair(t, 1024)
	if err := WriteEncrypted(&bytes.Buffer{}, d, []*x509.Certificate{small}, rand.Reader); err == nil {
		t.Error("a 1024-bit recipient accepted")
	}
}

// TestEncryptedTampering: every MAC is checked before any key is
// decrypted; an altered value, a removed MAC, a removed MACMethod or an
// algorithm CPIX does not use refuse the whole document.
func TestEncryptedTampering(t *testing.T) {
	k, c := recipientPair(t, 2048)
	_, doc := encryptedDoc(t, c)
	cipherValues := regexp.MustCompile(`<enc:CipherValue>([^<]+)</enc:CipherValue>`).FindAllStringSubmatch(string(doc), -1)
	lastCV := cipherValues[len(cipherValues)-1][1]
	flipped := []byte(lastCV)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	for _, c := range []struct {
		name, doc, reason string
	}{
		{"altered value", strings.Replace(string(doc), lastCV, string(flipped), 1), ReasonMACMismatch},
		{"no ValueMAC", regexp.MustCompile(`<pskc:ValueMAC>[^<]+</pskc:ValueMAC>`).ReplaceAllString(string(doc), ""), ReasonMissingMAC},
		{"no MACMethod", regexp.MustCompile(`(?s)<MACMethod .*?</MACMethod>`).ReplaceAllString(string(doc), ""), ReasonMissingMAC},
		{"key wrap algorithm", strings.Replace(string(doc), AlgAES256CBC+`"/><enc:CipherData>`, "http://www.w3.org/2001/04/xmlenc#aes128-cbc"+`"/><enc:CipherData>`, 1), ReasonUnsupportedAlgorithm},
		{"no DeliveryData", regexp.MustCompile(`(?s)<DeliveryDataList>.*</DeliveryDataList>`).ReplaceAllString(string(doc), ""), ReasonNotRecipient},
		{"signed", strings.Replace(string(doc), "</CPIX>", "<ds:Signature/></CPIX>", 1), ReasonSignatureNotVerified},
	} {
		_, err := ReadWith(strings.NewReader(c.doc), ReadOptions{Max: testMax, Recipient: k})
		var re *ReadError
		if !errors.As(err, &re) || !strings.Contains(re.Error(), c.reason) {
			t.Errorf("%s: %v, want %s", c.name, err, c.reason)
		}
	}
}

// TestReadSigned: a signed document is refused with a reason that says
// why, never read as if it were not signed.
func TestReadSigned(t *testing.T) {
	f, err := os.Open("testdata/cpix-2.3-signed.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Read(f, testMax)
	var re *ReadError
	if !errors.As(err, &re) || len(re.Problems) != 1 || re.Problems[0].Reason != ReasonSignatureNotVerified || re.Problems[0].Index != -1 {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(re.Problems[0].Detail, "signed") {
		t.Errorf("detail %q", re.Problems[0].Detail)
	}
}

func TestDocumentKey(t *testing.T) {
	dk, err := NewDocumentKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cv, mac, err := dk.Encrypt(rand.Reader, []byte("0123456789abcdef"))
	if err != nil || len(cv) != 48 || len(mac) != 64 {
		t.Fatalf("%d %d %v", len(cv), len(mac), err)
	}
	v, err := dk.Decrypt(cv, mac)
	if err != nil || string(v) != "0123456789abcdef" {
		t.Fatalf("%q %v", v, err)
	}
	if _, err := dk.Decrypt(cv[:32], mac); !errors.Is(err, ErrMAC) {
		t.Errorf("a cut value: %v", err)
	}
	if _, err := dk.Decrypt(cv, make([]byte, 64)); !errors.Is(err, ErrMAC) {
		t.Errorf("a wrong MAC: %v", err)
	}
}

// FuzzReadEncrypted: ReadWith with a recipient key (so the DeliveryData,
// MAC and decryption paths run) never panics; whatever it accepts holds
// 16-byte keys.
func FuzzReadEncrypted(f *testing.F) {
	k, c := recipientPair(f, 2048)
	d := &Document{ContentID: "fuzz", Keys: []Key{{KID: [16]byte{1}, Value: bytes.Repeat([]byte{7}, 16)}}}
	var buf bytes.Buffer
	if err := WriteEncrypted(&buf, d, []*x509.Certificate{c}, rand.Reader); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	if b, err := os.ReadFile("testdata/encrypted.xml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ReadWith(bytes.NewReader(data), ReadOptions{Max: 64 << 10, Recipient: k})
		if err != nil {
			return
		}
		for _, key := range got.Keys {
			if len(key.Value) != KeySize {
				t.Fatalf("a key of %d bytes", len(key.Value))
			}
		}
	})
}
