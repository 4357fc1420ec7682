package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

func recipientPair(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "cpix recipient"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

// TestEncryptedExportAndImport: an export with recipients holds no key in
// the clear; a server whose CPIX recipient key is one of them imports it
// (MACs checked before decrypting) to the same keys; a server without a
// recipient key, or with another, refuses it naming why; a tampered value
// is refused and nothing is imported; a signed document is refused.
func TestEncryptedExportAndImport(t *testing.T) {
	priv, cert := recipientPair(t)
	src, srcKeys := newRealEnv(t, nil)
	r := src.do(t, "POST", "/api/keys", secretWriter, `{"iv":"AAECAwQFBgcICQoLDA0ODw=="}`)
	var meta keyMetadata
	r.json(t, &meta)
	id, _ := keystore.ParseKeyID(meta.ID)
	want, err := srcKeys.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"kids":["` + meta.ID + `"],"recipients":["` + base64.StdEncoding.EncodeToString(cert.Raw) + `"]}`
	r = src.do(t, "POST", "/api/keys/export", secretExporter, body)
	if r.status != 200 || bytes.Contains(r.body, []byte("PlainValue")) || bytes.Contains(r.body, []byte(base64.StdEncoding.EncodeToString(want.Value[:]))) {
		t.Fatalf("encrypted export: %d\n%s", r.status, r.body)
	}
	doc := string(r.body)

	dst, dstKeys := newRealEnv(t, func(o *testOptions) { o.CPIXRecipient = priv })
	if r := dst.do(t, "POST", "/api/keys/import", secretWriter, doc, "Content-Type", "application/cpix+xml"); r.status != 200 {
		t.Fatalf("import of the encrypted export: %d %s", r.status, r.body)
	}
	got, err := dstKeys.Get(context.Background(), id)
	if err != nil || got.Value != want.Value || !bytes.Equal(got.IV, want.IV) {
		t.Fatalf("imported key: %v", err)
	}

	none, _ := newRealEnv(t, nil)
	r = none.do(t, "POST", "/api/keys/import", secretWriter, doc, "Content-Type", "application/cpix+xml")
	if p := r.problem(t); r.status != 400 || len(p.Problems) != 1 || p.Problems[0].Reason != cpix.ReasonEncryptedValueUnsupported || !strings.Contains(p.Problems[0].Detail, "--cpix-recipient-cert") {
		t.Fatalf("without a recipient key: %d %s", r.status, r.body)
	}
	other, _ := recipientPair(t)
	stranger, strangerKeys := newRealEnv(t, func(o *testOptions) { o.CPIXRecipient = other })
	r = stranger.do(t, "POST", "/api/keys/import", secretWriter, doc, "Content-Type", "application/cpix+xml")
	if p := r.problem(t); r.status != 400 || p.Problems[0].Reason != cpix.ReasonNotRecipient {
		t.Fatalf("another recipient: %d %s", r.status, r.body)
	}
	i := strings.LastIndex(doc, "<enc:CipherValue>") + len("<enc:CipherValue>") + 4
	tampered := doc[:i] + map[bool]string{true: "B", false: "A"}[doc[i] == 'A'] + doc[i+1:]
	dst2, dst2Keys := newRealEnv(t, func(o *testOptions) { o.CPIXRecipient = priv })
	r = dst2.do(t, "POST", "/api/keys/import", secretWriter, tampered, "Content-Type", "application/cpix+xml")
	if p := r.problem(t); r.status != 400 || p.Problems[0].Reason != cpix.ReasonMACMismatch {
		t.Fatalf("tampered: %d %s", r.status, r.body)
	}
	for _, k := range []*keystore.Keys{strangerKeys, dst2Keys} {
		if ks, _ := k.List(context.Background(), keystore.KeyID{}, 10); len(ks) != 0 {
			t.Fatal("a refused import stored keys")
		}
	}
	signed, err := os.ReadFile("../cpix/testdata/cpix-2.3-signed.xml")
	if err != nil {
		t.Fatal(err)
	}
	r = dst2.do(t, "POST", "/api/keys/import", secretWriter, string(signed), "Content-Type", "application/xml")
	if p := r.problem(t); r.status != 400 || p.Problems[0].Reason != cpix.ReasonSignatureNotVerified {
		t.Fatalf("signed: %d %s", r.status, r.body)
	}
	if r := src.do(t, "POST", "/api/keys/export", secretExporter, `{"kids":["`+meta.ID+`"],"recipients":["bm90IGEgY2VydA=="]}`); r.status != 400 || r.problem(t).Reason != "invalid_recipients" {
		t.Fatalf("a bad recipient: %d %s", r.status, r.body)
	}
}
