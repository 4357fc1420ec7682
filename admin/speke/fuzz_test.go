package speke

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/cpix"
	"github.com/keydelivery/keydelivery/keystore"
)

// FuzzRequest: a request document never panics the checks or the filling
// in; a refusal is a plain-text TextError (4xx); an accepted document,
// filled with keys and signaling, writes and reads back.
func FuzzRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, false)
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, v21 bool) {
		root, err := cpix.ParseTree(bytes.NewReader(doc), 64<<10)
		if err != nil {
			return
		}
		version := spekeVersion20
		if v21 {
			version = spekeVersion21
		}
		req, err := parseRequest(root, version, DefaultMaxKeys)
		if err != nil {
			var te *plane.TextError
			if !errors.As(err, &te) || te.Status < 400 || te.Status >= 500 || te.Text == "" {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		enc, err := newEncryption(req, rand.Reader)
		if err != nil {
			return // a recipient certificate that is refused
		}
		s := &signer{req: req, publicURL: publicURL, provider: "p", values: map[keystore.KeyID][16]byte{}, ivs: map[keystore.KeyID][]byte{}}
		for _, k := range req.keys {
			s.values[k.id] = [16]byte{1, 2, 3}
			if k.iv != nil {
				s.ivs[k.id] = k.iv
			}
		}
		if err := s.fill(); err != nil {
			t.Fatalf("fill: %v", err)
		}
		if err := fillKeys(req, s, enc); err != nil {
			t.Fatalf("fillKeys: %v", err)
		}
		var out bytes.Buffer
		if err := root.WriteDocument(&out); err != nil {
			return // text the input held that XML cannot carry
		}
		if _, err := cpix.ParseTree(&out, 1<<20); err != nil {
			t.Fatalf("the answer does not read back: %v", err)
		}
	})
}
